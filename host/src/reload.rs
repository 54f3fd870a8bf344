//! Hot reload: watches the plugin directory and loads (or retires) each
//! component file once it has stopped changing for a moment.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::time::Instant;

use crate::plugins::{Registry, is_component_file};

/// How long a file must stay unchanged before it is loaded: long enough for a
/// copy in progress to finish, short enough to serve within a second.
pub const SETTLE: Duration = Duration::from_millis(200);

/// Starts watching `dir`; changes are applied to `registry` until the process ends.
pub fn watch(registry: Arc<Registry>, dir: PathBuf) -> notify::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            // Reading a file (as reloading does) is no change: reacting to it would loop.
            Ok(event) if event.kind.is_access() => {}
            Ok(event) => {
                for path in event.paths {
                    let _ = tx.send(path);
                }
            }
            Err(e) => tracing::warn!(error = %e, "plugin directory watch error"),
        })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        let _watching = watcher;
        let mut pending: HashMap<PathBuf, Instant> = HashMap::new();
        loop {
            let next = pending.values().min().map(|changed| *changed + SETTLE);
            tokio::select! {
                changed = rx.recv() => match changed {
                    Some(path) if is_component_file(&path) => {
                        pending.insert(path, Instant::now());
                    }
                    Some(_) => {}
                    None => return,
                },
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    let now = Instant::now();
                    let settled: Vec<PathBuf> = pending
                        .iter()
                        .filter(|(_, changed)| **changed + SETTLE <= now)
                        .map(|(path, _)| path.clone())
                        .collect();
                    for path in settled {
                        pending.remove(&path);
                        if path.exists() {
                            let _ = registry.reload(&path).await;
                        } else {
                            registry.retire_file(&path);
                        }
                    }
                }
            }
        }
    });
    Ok(())
}
