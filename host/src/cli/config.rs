//! Where the client commands find the server, the token and the output format:
//! flags, then WASMQ_* environment variables, then a TOML config file, then defaults.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The server the client talks to when nothing says otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// How results are printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// Tables and lines for people.
    #[default]
    Table,
    /// The API's JSON, one document.
    Json,
}

/// What one source (flags, environment or config file) says; None where it is silent.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub server: Option<String>,
    pub token: Option<String>,
    pub output: Option<Output>,
}

/// The settings a client command runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub server: String,
    pub token: String,
    pub output: Output,
}

/// Why there are no usable settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No source gave a token.
    #[error(
        "no API token: pass --token, set WASMQ_TOKEN, or put token = \"...\" in {}; `wasmq token create` makes one",
        .0.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "a config file ($WASMQ_CONFIG)".into())
    )]
    NoToken(Option<PathBuf>),
    /// The config file cannot be read or is not valid.
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    /// A value is unusable.
    #[error("{source_name}: {reason}")]
    Bad { source_name: String, reason: String },
}

/// The config file to read, and whether it was named explicitly by
/// `$WASMQ_CONFIG` (then it must exist): else `$XDG_CONFIG_HOME/wasmq/config.toml`,
/// else `~/.config/wasmq/config.toml`.
pub fn config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<(PathBuf, bool)> {
    if let Some(path) = env("WASMQ_CONFIG") {
        return Some((PathBuf::from(path), true));
    }
    if let Some(dir) = env("XDG_CONFIG_HOME") {
        return Some((Path::new(&dir).join("wasmq/config.toml"), false));
    }
    env("HOME").map(|home| (Path::new(&home).join(".config/wasmq/config.toml"), false))
}

/// What the environment says: `WASMQ_SERVER`, `WASMQ_TOKEN`, `WASMQ_OUTPUT`.
pub fn env_layer(env: &dyn Fn(&str) -> Option<String>) -> Result<Layer, ConfigError> {
    let output = match env("WASMQ_OUTPUT") {
        None => None,
        Some(text) => Some(parse_output(&text).ok_or_else(|| ConfigError::Bad {
            source_name: "WASMQ_OUTPUT".into(),
            reason: format!("{text:?} is not table or json"),
        })?),
    };
    Ok(Layer {
        server: env("WASMQ_SERVER"),
        token: env("WASMQ_TOKEN"),
        output,
    })
}

fn parse_output(text: &str) -> Option<Output> {
    match text {
        "table" => Some(Output::Table),
        "json" => Some(Output::Json),
        _ => None,
    }
}

/// Parses a config file's text: TOML with the keys `server`, `token` and `output`.
pub fn parse_file(text: &str) -> Result<Layer, String> {
    toml::from_str(text).map_err(|e| e.message().to_string())
}

/// Merges the sources, the first that says something winning: flags, then
/// environment, then file, then defaults. `file` names the config file for messages.
pub fn resolve(
    flags: &Layer,
    env: &Layer,
    file: &Layer,
    file_path: Option<&Path>,
) -> Result<Settings, ConfigError> {
    let layers = [flags, env, file];
    let pick = |get: fn(&Layer) -> Option<&String>| {
        layers
            .iter()
            .find_map(|l| get(l).filter(|v| !v.is_empty()))
            .cloned()
    };
    let server = pick(|l| l.server.as_ref()).unwrap_or_else(|| DEFAULT_SERVER.to_string());
    // The client is built without TLS, like the server, which listens on plain HTTP.
    if !server.starts_with("http://") || reqwest::Url::parse(&server).is_err() {
        return Err(ConfigError::Bad {
            source_name: "server".into(),
            reason: format!("{server:?} is not an http:// URL (https is not supported)"),
        });
    }
    let token = pick(|l| l.token.as_ref())
        .ok_or_else(|| ConfigError::NoToken(file_path.map(Path::to_path_buf)))?;
    let output = layers
        .iter()
        .find_map(|l| l.output)
        .unwrap_or(Output::Table);
    Ok(Settings {
        server,
        token,
        output,
    })
}

/// Resolves the settings from `flags`, the process environment and the config file.
pub fn load(flags: &Layer) -> Result<Settings, ConfigError> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let env_values = env_layer(&env)?;
    let path = config_path(&env);
    let file = match &path {
        None => Layer::default(),
        Some((path, explicit)) => match std::fs::read_to_string(path) {
            Ok(text) => parse_file(&text).map_err(|reason| ConfigError::File {
                path: path.clone(),
                reason,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Layer::default(),
            Err(e) => {
                return Err(ConfigError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                });
            }
        },
    };
    resolve(
        flags,
        &env_values,
        &file,
        path.as_ref().map(|(p, _)| p.as_path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn layer(server: Option<&str>, token: Option<&str>, output: Option<Output>) -> Layer {
        Layer {
            server: server.map(str::to_string),
            token: token.map(str::to_string),
            output,
        }
    }

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let flags = layer(
            Some("http://flag:1"),
            Some("flag-token"),
            Some(Output::Json),
        );
        let env = layer(Some("http://env:2"), Some("env-token"), Some(Output::Table));
        let file = layer(
            Some("http://file:3"),
            Some("file-token"),
            Some(Output::Json),
        );
        let none = Layer::default();

        let s = resolve(&flags, &env, &file, None).unwrap();
        assert_eq!(
            (s.server.as_str(), s.token.as_str(), s.output),
            ("http://flag:1", "flag-token", Output::Json)
        );
        let s = resolve(&none, &env, &file, None).unwrap();
        assert_eq!(
            (s.server.as_str(), s.token.as_str(), s.output),
            ("http://env:2", "env-token", Output::Table)
        );
        let s = resolve(&none, &none, &file, None).unwrap();
        assert_eq!(
            (s.server.as_str(), s.token.as_str(), s.output),
            ("http://file:3", "file-token", Output::Json)
        );
        let s = resolve(&none, &none, &layer(None, Some("t"), None), None).unwrap();
        assert_eq!(
            (s.server.as_str(), s.output),
            (DEFAULT_SERVER, Output::Table)
        );
    }

    #[test]
    fn each_key_falls_through_on_its_own() {
        let flags = layer(None, Some("flag-token"), None);
        let env = layer(Some("http://env:2"), None, None);
        let file = layer(
            Some("http://file:3"),
            Some("file-token"),
            Some(Output::Json),
        );
        let s = resolve(&flags, &env, &file, None).unwrap();
        assert_eq!(
            (s.server.as_str(), s.token.as_str(), s.output),
            ("http://env:2", "flag-token", Output::Json)
        );
    }

    #[test]
    fn a_missing_token_names_where_to_put_one() {
        let none = Layer::default();
        let path = Path::new("/home/u/.config/wasmq/config.toml");
        let err = resolve(&none, &none, &none, Some(path)).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ConfigError::NoToken(_)));
        for needle in [
            "--token",
            "WASMQ_TOKEN",
            "/home/u/.config/wasmq/config.toml",
        ] {
            assert!(text.contains(needle), "{text}");
        }
        // An empty value counts as none.
        let empty = layer(None, Some(""), None);
        assert!(resolve(&empty, &none, &none, None).is_err());
    }

    #[test]
    fn a_server_must_be_an_http_url() {
        let t = layer(None, Some("t"), None);
        for bad in ["127.0.0.1:8080", "ftp://x", "http://", "https://h:1"] {
            let flags = layer(Some(bad), Some("t"), None);
            assert!(resolve(&flags, &t, &t, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_config_path_follows_wasmq_config_then_xdg_then_home() {
        let vars = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let all = vars(&[
            ("WASMQ_CONFIG", "/etc/w.toml"),
            ("XDG_CONFIG_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        let get = |m: &HashMap<String, String>| {
            let m = m.clone();
            move |k: &str| m.get(k).cloned()
        };
        assert_eq!(
            config_path(&get(&all)),
            Some((PathBuf::from("/etc/w.toml"), true))
        );
        let xdg = vars(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(
            config_path(&get(&xdg)),
            Some((PathBuf::from("/x/wasmq/config.toml"), false))
        );
        let home = vars(&[("HOME", "/h")]);
        assert_eq!(
            config_path(&get(&home)),
            Some((PathBuf::from("/h/.config/wasmq/config.toml"), false))
        );
        assert_eq!(config_path(&get(&vars(&[]))), None);
    }

    #[test]
    fn config_files_and_env_are_checked() {
        let file =
            parse_file("server = \"http://s:1\"\ntoken = \"abc\"\noutput = \"json\"\n").unwrap();
        assert_eq!(
            file,
            layer(Some("http://s:1"), Some("abc"), Some(Output::Json))
        );
        assert!(parse_file("servr = \"x\"").unwrap_err().contains("servr"));
        assert!(parse_file("output = \"yaml\"").is_err());
        assert!(parse_file("token = ").is_err());
        let env = |k: &str| (k == "WASMQ_OUTPUT").then(|| "xml".to_string());
        assert!(env_layer(&env).is_err());
    }
}
