//! The asset repository: binaries and their renditions in object stores (local
//! directories by default), rows, metadata and references in the database.

use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use sqlx::Row;
use thiserror::Error;

use crate::objects::ObjectStores;
use crate::paths::{self, Scope};
use crate::store::now_ms;

/// Why an asset operation failed.
#[derive(Debug, Error)]
pub enum AssetError {
    #[error("no asset at {0}")]
    NotFound(String),
    #[error("an asset already exists at {0}")]
    Exists(String),
    #[error("object store: {0}")]
    Objects(#[from] object_store::Error),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("bad metadata value for {name}: {reason}")]
    BadValue { name: String, reason: String },
    #[error(
        "rendition name {0:?} must be 1-128 letters, digits, '.', '-' or '_', not starting with '.'"
    )]
    BadRenditionName(String),
}

type Result<T, E = AssetError> = std::result::Result<T, E>;

/// Facts about one asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetStat {
    pub path: String,
    pub size: u64,
    pub etag: String,
    pub content_type: String,
    pub modified_at: i64,
}

/// One page of a listing; `next_cursor` continues it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetPage {
    pub assets: Vec<AssetStat>,
    pub next_cursor: Option<String>,
}

/// A typed metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    Text(String),
    Long(i64),
    Double(f64),
    Boolean(bool),
    Date(String),
}

impl MetaValue {
    fn encode(&self) -> (&'static str, String) {
        match self {
            MetaValue::Text(s) => ("text", s.clone()),
            MetaValue::Long(v) => ("long", v.to_string()),
            MetaValue::Double(v) => ("double", v.to_string()),
            MetaValue::Boolean(v) => ("boolean", v.to_string()),
            MetaValue::Date(s) => ("date", s.clone()),
        }
    }

    fn decode(kind: &str, value: String) -> MetaValue {
        match kind {
            "long" => value
                .parse()
                .map(MetaValue::Long)
                .unwrap_or(MetaValue::Text(value)),
            "double" => value
                .parse()
                .map(MetaValue::Double)
                .unwrap_or(MetaValue::Text(value)),
            "boolean" => MetaValue::Boolean(value == "true"),
            "date" => MetaValue::Date(value),
            _ => MetaValue::Text(value),
        }
    }
}

/// A named, possibly multi-valued metadata property.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub name: String,
    pub values: Vec<MetaValue>,
}

/// Facts about one rendition of an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenditionStat {
    pub path: String,
    pub name: String,
    pub size: u64,
    pub etag: String,
    pub content_type: String,
    pub modified_at: i64,
}

/// The asset repository of every tenant.
#[derive(Clone)]
pub struct AssetRepo {
    pub(crate) pool: AnyPool,
    objects: Arc<dyn ObjectStore>,
    renditions: Arc<dyn ObjectStore>,
    /// The publish target (see `publish`).
    pub(crate) published: Arc<dyn ObjectStore>,
    /// Serializes the rewriting of referring texts when assets move, so two
    /// moves that touch the same referrer cannot lose each other's edits.
    rewrites: Arc<tokio::sync::Mutex<()>>,
}

/// The PostgreSQL advisory lock key that serializes referrer rewrites between hosts.
const REWRITE_LOCK: i64 = 0x7761_736d_7172_7772; // "wasmqrwr"

/// The largest page `list` returns.
pub const MAX_PAGE: u32 = 1000;

impl AssetRepo {
    /// A repository whose binaries, renditions and publish target live in
    /// `stores` (local directories or S3, see `objects`).
    pub fn new(pool: AnyPool, stores: ObjectStores) -> Self {
        AssetRepo {
            pool,
            objects: stores.assets,
            renditions: stores.renditions,
            published: stores.published,
            rewrites: Arc::default(),
        }
    }

    /// A repository whose binaries live under the local directory `root`,
    /// renditions under `renditions` and the publish target under `published`.
    pub fn local(
        pool: AnyPool,
        root: &FsPath,
        renditions: &FsPath,
        published: &FsPath,
    ) -> Result<Self> {
        let stores = ObjectStores {
            assets: Arc::new(local_store(root)?),
            renditions: Arc::new(local_store(renditions)?),
            published: Arc::new(local_store(published)?),
        };
        Ok(Self::new(pool, stores))
    }

    fn key(tenant: &str, path: &str) -> ObjectPath {
        ObjectPath::from(format!("{tenant}{path}"))
    }

    fn rendition_key(tenant: &str, path: &str, name: &str) -> ObjectPath {
        ObjectPath::from(format!("{tenant}{path}/{name}"))
    }

    /// Lists assets under `folder` in path order, skipping those outside `scope`.
    pub async fn list(
        &self,
        tenant: &str,
        folder: &str,
        recursive: bool,
        cursor: Option<&str>,
        limit: u32,
        scope: Option<&Scope>,
    ) -> Result<AssetPage> {
        let limit = limit.clamp(1, MAX_PAGE) as i64;
        let (start, end) = paths::descendants_range(folder);
        let mut q = crate::db::Sql::new(
            "SELECT path, size, etag, content_type, modified_at FROM assets WHERE tenant = ",
        );
        q.text(tenant);
        match cursor {
            Some(c) if c >= start.as_str() => q.push(" AND path > ").text(c),
            _ => q.push(" AND path >= ").text(start.as_str()),
        };
        q.push(" AND path < ").text(end);
        q.push(" ORDER BY path LIMIT ").int(limit);
        let rows = q.query().fetch_all(&self.pool).await?;
        let next_cursor = (rows.len() as i64 == limit)
            .then(|| rows.last().map(|r| r.get::<String, _>(0)))
            .flatten();
        let assets = rows
            .into_iter()
            .map(stat_from_row)
            .filter(|a| recursive || !a.path[start.len()..].contains('/'))
            .filter(|a| scope.is_none_or(|s| s.contains(&a.path)))
            .collect();
        Ok(AssetPage {
            assets,
            next_cursor,
        })
    }

    /// Facts about the asset at `path`, if there is one.
    pub async fn stat(&self, tenant: &str, path: &str) -> Result<Option<AssetStat>> {
        let row = sqlx::query(
            "SELECT path, size, etag, content_type, modified_at FROM assets WHERE tenant = $1 AND path = $2",
        )
        .bind(tenant)
        .bind(path)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(stat_from_row))
    }

    /// The binary of the asset at `path`.
    pub async fn read(&self, tenant: &str, path: &str) -> Result<Bytes> {
        if self.stat(tenant, path).await?.is_none() {
            return Err(AssetError::NotFound(path.into()));
        }
        Ok(self
            .objects
            .get(&Self::key(tenant, path))
            .await?
            .bytes()
            .await?)
    }

    /// Creates or replaces an asset; for text assets, re-records the references it makes.
    pub async fn write(
        &self,
        tenant: &str,
        path: &str,
        data: Bytes,
        content_type: &str,
    ) -> Result<AssetStat> {
        let stat = self
            .put_binary(tenant, path, data.clone(), content_type)
            .await?;
        if is_text(content_type) {
            self.record_references(tenant, path, &String::from_utf8_lossy(&data))
                .await?;
        }
        Ok(stat)
    }

    /// Creates or replaces an asset without looking for references in it
    /// (for files the host itself writes, such as job reports).
    pub async fn put_binary(
        &self,
        tenant: &str,
        path: &str,
        data: Bytes,
        content_type: &str,
    ) -> Result<AssetStat> {
        let etag = etag_of(&data);
        let size = data.len() as u64;
        self.objects
            .put(&Self::key(tenant, path), PutPayload::from_bytes(data))
            .await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO assets (tenant, path, size, etag, content_type, created_at, modified_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant, path) DO UPDATE SET \
             size = excluded.size, etag = excluded.etag, content_type = excluded.content_type, modified_at = excluded.modified_at",
        )
        .bind(tenant)
        .bind(path)
        .bind(size as i64)
        .bind(&etag)
        .bind(content_type)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(AssetStat {
            path: path.into(),
            size,
            etag,
            content_type: content_type.into(),
            modified_at: now,
        })
    }

    /// Replaces the references `source` makes with those found in `text` that name existing assets.
    async fn record_references(&self, tenant: &str, source: &str, text: &str) -> Result<usize> {
        let mut targets = extract_asset_paths(text);
        targets.retain(|t| t != source);
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM refs WHERE tenant = $1 AND source = $2")
            .bind(tenant)
            .bind(source)
            .execute(&mut *tx)
            .await?;
        let mut recorded = 0;
        for target in targets {
            let done = sqlx::query(
                "INSERT INTO refs (tenant, source, target) \
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM assets WHERE tenant = $1 AND path = $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(source)
            .bind(&target)
            .execute(&mut *tx)
            .await?;
            recorded += done.rows_affected() as usize;
        }
        tx.commit().await?;
        Ok(recorded)
    }

    /// Deletes an asset, its metadata and the references it makes; false if there was none.
    pub async fn delete(&self, tenant: &str, path: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM assets WHERE tenant = $1 AND path = $2")
            .bind(tenant)
            .bind(path)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM metadata WHERE tenant = $1 AND path = $2")
            .bind(tenant)
            .bind(path)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM refs WHERE tenant = $1 AND source = $2")
            .bind(tenant)
            .bind(path)
            .execute(&mut *tx)
            .await?;
        let names: Vec<String> = sqlx::query_scalar(
            "DELETE FROM renditions WHERE tenant = $1 AND path = $2 RETURNING name",
        )
        .bind(tenant)
        .bind(path)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        for name in names {
            let key = Self::rendition_key(tenant, path, &name);
            if let Err(e) = self.renditions.delete(&key).await {
                tracing::warn!(tenant, path, name, error = %e, "rendition row deleted but its binary stays");
            }
        }
        match self.objects.delete(&Self::key(tenant, path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(e) => {
                tracing::warn!(tenant, path, error = %e, "asset row deleted but its binary stays");
                Ok(true)
            }
        }
    }

    /// Moves an asset with its metadata and renditions; references to it
    /// follow, both in the reference table and as text inside the referring
    /// text assets (HTML, CSS, JSON, XML, Markdown, ...) anywhere in the tenant.
    ///
    /// Order, so that a crash at any point leaves the asset whole at one path
    /// and a re-run finishes the move: copy the binary and renditions, rewrite
    /// the referring texts, move the rows in one transaction, remove the old
    /// binaries. Until the transaction commits, referrers may already name the
    /// destination.
    pub async fn move_asset(&self, tenant: &str, from: &str, to: &str) -> Result<AssetStat> {
        let stat = self
            .stat(tenant, from)
            .await?
            .ok_or_else(|| AssetError::NotFound(from.into()))?;
        if self.stat(tenant, to).await?.is_some() {
            return Err(AssetError::Exists(to.into()));
        }
        self.objects
            .copy(&Self::key(tenant, from), &Self::key(tenant, to))
            .await?;
        let renditions = self.renditions(tenant, from).await?;
        for r in &renditions {
            self.renditions
                .copy(
                    &Self::rendition_key(tenant, from, &r.name),
                    &Self::rendition_key(tenant, to, &r.name),
                )
                .await?;
        }
        self.rewrite_referrers(tenant, from, to).await?;
        let mut tx = self.pool.begin().await?;
        for sql in [
            "UPDATE assets SET path = $3 WHERE tenant = $1 AND path = $2",
            "UPDATE metadata SET path = $3 WHERE tenant = $1 AND path = $2",
            "UPDATE renditions SET path = $3 WHERE tenant = $1 AND path = $2",
            "UPDATE refs SET source = $3 WHERE tenant = $1 AND source = $2",
            "UPDATE refs SET target = $3 WHERE tenant = $1 AND target = $2",
        ] {
            sqlx::query(sql)
                .bind(tenant)
                .bind(from)
                .bind(to)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if let Err(e) = self.objects.delete(&Self::key(tenant, from)).await {
            tracing::warn!(tenant, from, error = %e, "moved asset left its old binary behind");
        }
        for r in &renditions {
            let key = Self::rendition_key(tenant, from, &r.name);
            if let Err(e) = self.renditions.delete(&key).await {
                tracing::warn!(tenant, from, name = r.name, error = %e, "moved rendition left its old binary behind");
            }
        }
        Ok(AssetStat {
            path: to.into(),
            ..stat
        })
    }

    /// Rewrites `from` to `to` inside every text asset that refers to `from`;
    /// returns how many changed. The reference rows are left to the caller.
    ///
    /// One rewrite at a time: within the process by a mutex, and between the
    /// hosts sharing a PostgreSQL database by a session advisory lock, held on
    /// a connection of its own (released with it if the host dies).
    async fn rewrite_referrers(&self, tenant: &str, from: &str, to: &str) -> Result<usize> {
        let _one_at_a_time = self.rewrites.lock().await;
        let shared = self
            .pool
            .connect_options()
            .database_url
            .scheme()
            .starts_with("postgres");
        if !shared {
            return self.rewrite_referrers_locked(tenant, from, to).await;
        }
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(REWRITE_LOCK)
            .execute(&mut *conn)
            .await?;
        let outcome = self.rewrite_referrers_locked(tenant, from, to).await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(REWRITE_LOCK)
            .execute(&mut *conn)
            .await;
        if unlocked.is_err() {
            // Closing the session is what releases the lock then.
            drop(conn.detach());
        }
        outcome
    }

    async fn rewrite_referrers_locked(&self, tenant: &str, from: &str, to: &str) -> Result<usize> {
        let mut changed = 0;
        for referrer in self.referrers(tenant, from).await? {
            let Some(stat) = self.stat(tenant, &referrer).await? else {
                continue;
            };
            if !is_text(&stat.content_type) {
                continue;
            }
            let data = self.read(tenant, &referrer).await?;
            let text = String::from_utf8_lossy(&data);
            if let Some(new) = rewrite_path(&text, from, to) {
                self.put_binary(tenant, &referrer, Bytes::from(new), &stat.content_type)
                    .await?;
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// The renditions of the asset at `path`, by name.
    pub async fn renditions(&self, tenant: &str, path: &str) -> Result<Vec<RenditionStat>> {
        let rows = sqlx::query(
            "SELECT path, name, size, etag, content_type, modified_at FROM renditions \
             WHERE tenant = $1 AND path = $2 ORDER BY name",
        )
        .bind(tenant)
        .bind(path)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| RenditionStat {
                path: row.get(0),
                name: row.get(1),
                size: row.get::<i64, _>(2) as u64,
                etag: row.get(3),
                content_type: row.get(4),
                modified_at: row.get(5),
            })
            .collect())
    }

    /// The binary of one rendition.
    pub async fn read_rendition(&self, tenant: &str, path: &str, name: &str) -> Result<Bytes> {
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM renditions WHERE tenant = $1 AND path = $2 AND name = $3",
        )
        .bind(tenant)
        .bind(path)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        if exists.is_none() {
            return Err(AssetError::NotFound(format!("{path} (rendition {name})")));
        }
        let key = Self::rendition_key(tenant, path, name);
        Ok(self.renditions.get(&key).await?.bytes().await?)
    }

    /// Creates or replaces a rendition of the existing asset at `path`.
    pub async fn write_rendition(
        &self,
        tenant: &str,
        path: &str,
        name: &str,
        data: Bytes,
        content_type: &str,
    ) -> Result<RenditionStat> {
        if !valid_rendition_name(name) {
            return Err(AssetError::BadRenditionName(name.into()));
        }
        if self.stat(tenant, path).await?.is_none() {
            return Err(AssetError::NotFound(path.into()));
        }
        let stat = RenditionStat {
            path: path.into(),
            name: name.into(),
            size: data.len() as u64,
            etag: etag_of(&data),
            content_type: content_type.into(),
            modified_at: now_ms(),
        };
        self.renditions
            .put(
                &Self::rendition_key(tenant, path, name),
                PutPayload::from_bytes(data),
            )
            .await?;
        sqlx::query(
            "INSERT INTO renditions (tenant, path, name, size, etag, content_type, modified_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant, path, name) DO UPDATE SET \
             size = excluded.size, etag = excluded.etag, content_type = excluded.content_type, \
             modified_at = excluded.modified_at",
        )
        .bind(tenant)
        .bind(path)
        .bind(name)
        .bind(stat.size as i64)
        .bind(&stat.etag)
        .bind(content_type)
        .bind(stat.modified_at)
        .execute(&self.pool)
        .await?;
        Ok(stat)
    }

    /// Removes one rendition; false if there was none.
    pub async fn delete_rendition(&self, tenant: &str, path: &str, name: &str) -> Result<bool> {
        let gone =
            sqlx::query("DELETE FROM renditions WHERE tenant = $1 AND path = $2 AND name = $3")
                .bind(tenant)
                .bind(path)
                .bind(name)
                .execute(&self.pool)
                .await?
                .rows_affected();
        if gone == 0 {
            return Ok(false);
        }
        match self
            .renditions
            .delete(&Self::rendition_key(tenant, path, name))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(tenant, path, name, error = %e, "rendition row deleted but its binary stays")
            }
        }
        Ok(true)
    }

    /// The assets that refer to `path`, in path order.
    pub async fn referrers(&self, tenant: &str, path: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT source FROM refs WHERE tenant = $1 AND target = $2 ORDER BY source",
        )
        .bind(tenant)
        .bind(path)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The assets `path` refers to, in path order.
    pub async fn references(&self, tenant: &str, path: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT target FROM refs WHERE tenant = $1 AND source = $2 ORDER BY target",
        )
        .bind(tenant)
        .bind(path)
        .fetch_all(&self.pool)
        .await?)
    }

    /// All metadata properties of an asset, sorted by name.
    pub async fn metadata(&self, tenant: &str, path: &str) -> Result<Vec<Property>> {
        if self.stat(tenant, path).await?.is_none() {
            return Err(AssetError::NotFound(path.into()));
        }
        let rows = sqlx::query("SELECT name, kind, value FROM metadata WHERE tenant = $1 AND path = $2 ORDER BY name, idx")
            .bind(tenant)
            .bind(path)
            .fetch_all(&self.pool)
            .await?;
        let mut props: Vec<Property> = Vec::new();
        for row in rows {
            let name: String = row.get(0);
            let value = MetaValue::decode(row.get::<String, _>(1).as_str(), row.get(2));
            match props.last_mut() {
                Some(p) if p.name == name => p.values.push(value),
                _ => props.push(Property {
                    name,
                    values: vec![value],
                }),
            }
        }
        Ok(props)
    }

    /// Sets properties (merge, or `replace` all); a property with no values is removed.
    pub async fn set_metadata(
        &self,
        tenant: &str,
        path: &str,
        props: &[Property],
        replace: bool,
    ) -> Result<()> {
        if self.stat(tenant, path).await?.is_none() {
            return Err(AssetError::NotFound(path.into()));
        }
        for p in props {
            if let Some(MetaValue::Double(v)) = p
                .values
                .iter()
                .find(|v| matches!(v, MetaValue::Double(d) if !d.is_finite()))
            {
                return Err(AssetError::BadValue {
                    name: p.name.clone(),
                    reason: format!("{v} is not a finite number"),
                });
            }
        }
        let mut tx = self.pool.begin().await?;
        if replace {
            sqlx::query("DELETE FROM metadata WHERE tenant = $1 AND path = $2")
                .bind(tenant)
                .bind(path)
                .execute(&mut *tx)
                .await?;
        }
        for p in props {
            sqlx::query("DELETE FROM metadata WHERE tenant = $1 AND path = $2 AND name = $3")
                .bind(tenant)
                .bind(path)
                .bind(&p.name)
                .execute(&mut *tx)
                .await?;
            for (idx, value) in p.values.iter().enumerate() {
                let (kind, text) = value.encode();
                sqlx::query("INSERT INTO metadata (tenant, path, name, idx, kind, value) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(tenant)
                    .bind(path)
                    .bind(&p.name)
                    .bind(idx as i64)
                    .bind(kind)
                    .bind(text)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Imports every regular file under `dir` as an asset under `to`, then
    /// records the references that text assets make to imported assets.
    /// Returns (assets imported, references recorded).
    pub async fn import_dir(&self, tenant: &str, dir: &FsPath, to: &str) -> Result<(usize, usize)> {
        let mut files = Vec::new();
        collect_files(dir, &mut files)?;
        files.sort();
        let mut texts = Vec::new();
        for file in &files {
            let rel = file.strip_prefix(dir).expect("collected under dir");
            let rel = rel
                .iter()
                .map(|s| s.to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let path = format!("{}/{rel}", to.trim_end_matches('/'));
            if paths::validate(&path).is_err() {
                tracing::warn!(file = %file.display(), "skipped: not a valid asset path");
                continue;
            }
            let data =
                std::fs::read(file).map_err(|e| AssetError::Io(file.display().to_string(), e))?;
            let content_type = content_type_for(&path);
            if is_text(content_type) {
                texts.push((path.clone(), String::from_utf8_lossy(&data).into_owned()));
            }
            self.put_binary(tenant, &path, Bytes::from(data), content_type)
                .await?;
        }
        let mut refs = 0;
        for (path, text) in texts {
            refs += self.record_references(tenant, &path, &text).await?;
        }
        Ok((files.len(), refs))
    }
}

fn stat_from_row(row: sqlx::any::AnyRow) -> AssetStat {
    AssetStat {
        path: row.get(0),
        size: row.get::<i64, _>(1) as u64,
        etag: row.get(2),
        content_type: row.get(3),
        modified_at: row.get(4),
    }
}

fn local_store(root: &FsPath) -> Result<LocalFileSystem> {
    std::fs::create_dir_all(root).map_err(|e| AssetError::Io(root.display().to_string(), e))?;
    Ok(LocalFileSystem::new_with_prefix(root)?)
}

/// True for a rendition name: 1-128 of `[A-Za-z0-9._-]`, not starting with `.`.
pub fn valid_rendition_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// `text` with every whole mention of the asset path `from` replaced by `to`,
/// or `None` if there is none. A mention is whole when it is not part of a
/// longer path or word: `/dam/a.png` is not rewritten in `/dam/a.png2`,
/// `/dam/a.png/x` or `/x/dam/a.png`.
pub fn rewrite_path(text: &str, from: &str, to: &str) -> Option<String> {
    let continues = |c: char| c.is_alphanumeric() || matches!(c, '/' | '_' | '-' | '%' | '~');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find(from) {
        let before = if at > 0 {
            rest[..at].chars().next_back()
        } else {
            out.chars().next_back()
        };
        let after_text = &rest[at + from.len()..];
        let mut after = after_text.chars();
        let whole = !before.is_some_and(|c| continues(c) || c == '.')
            && match after.next() {
                None => true,
                Some('.') => !after.next().is_some_and(|c| c.is_alphanumeric()),
                Some(c) => !continues(c),
            };
        out.push_str(&rest[..at]);
        out.push_str(if whole { to } else { from });
        changed |= whole;
        rest = after_text;
    }
    out.push_str(rest);
    changed.then_some(out)
}

fn collect_files(dir: &FsPath, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    let io = |e| AssetError::Io(dir.display().to_string(), e);
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            collect_files(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// The etag of a binary: the first 128 bits of its SHA-256, in hex.
pub fn etag_of(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The media type for a path's extension.
pub fn content_type_for(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" => "text/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "md" => "text/markdown",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "gz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// True for media types whose text may name other assets. CSV is left out:
/// a metadata or report CSV lists assets without depending on them.
pub fn is_text(content_type: &str) -> bool {
    (content_type.starts_with("text/") && content_type != "text/csv")
        || matches!(
            content_type,
            "application/json" | "application/xml" | "image/svg+xml"
        )
}

/// The asset paths (`/content/...`) a text names, in order of first appearance, without repeats.
pub fn extract_asset_paths(text: &str) -> Vec<String> {
    const DELIMITERS: &[char] = &[
        '"', '\'', '<', '>', '(', ')', '`', ' ', '\t', '\r', '\n', '?', '#', ',',
    ];
    let mut found: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("/content/") {
        let tail = &rest[at..];
        let end = tail.find(DELIMITERS).unwrap_or(tail.len());
        let candidate = tail[..end].trim_end_matches(['.', ';', ':']);
        if paths::validate(candidate).is_ok() && !found.iter().any(|f| f == candidate) {
            found.push(candidate.to_string());
        }
        rest = &tail[end.max(1)..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_paths_in_html_css_and_markdown() {
        let text = r#"<img src="/content/dam/a.png"> url(/content/dam/b c.css)
            [x](/content/dam/c.md). "/content/dam/a.png" /content/dam/d?x=1 /content/../e"#;
        assert_eq!(
            extract_asset_paths(text),
            vec![
                "/content/dam/a.png",
                "/content/dam/b",
                "/content/dam/c.md",
                "/content/dam/d"
            ]
        );
    }

    #[test]
    fn rewrites_whole_mentions_only() {
        let text = r#"<img src="/content/dam/a.png"> url(/content/dam/a.png) "/content/dam/a.png2"
            /content/dam/a.png/x /y/content/dam/a.png [a](/content/dam/a.png). /content/dam/a.png?w=1"#;
        let new = rewrite_path(text, "/content/dam/a.png", "/content/new/b.png").unwrap();
        assert_eq!(
            new,
            r#"<img src="/content/new/b.png"> url(/content/new/b.png) "/content/dam/a.png2"
            /content/dam/a.png/x /y/content/dam/a.png [a](/content/new/b.png). /content/new/b.png?w=1"#
        );
        assert_eq!(rewrite_path("nothing", "/content/a", "/b"), None);
        assert_eq!(rewrite_path("/content/ab", "/content/a", "/b"), None);
    }

    #[test]
    fn rendition_names() {
        assert!(valid_rendition_name("page-1.png") && valid_rendition_name("optimized_2.webp"));
        for bad in ["", ".hidden", "a/b", "a b", "é.png", &"x".repeat(129)] {
            assert!(!valid_rendition_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn no_paths_in_plain_text() {
        assert!(extract_asset_paths("nothing here /contentx/a").is_empty());
    }

    #[test]
    fn etag_is_stable_and_short() {
        assert_eq!(etag_of(b"abc"), "ba7816bf8f01cfea414140de5dae2223");
        assert_ne!(etag_of(b"abc"), etag_of(b"abd"));
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type_for("/a/B.HTML"), "text/html");
        assert_eq!(content_type_for("/a/copyright"), "application/octet-stream");
        assert!(is_text("text/css") && is_text("image/svg+xml") && !is_text("image/png"));
        assert!(!is_text("text/csv"));
    }
}
