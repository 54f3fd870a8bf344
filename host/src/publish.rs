//! The publish target: copies of assets and their renditions in a second object
//! store (served read-only at `/published/...`), and what is published, when and by whom.

use bytes::Bytes;
use object_store::PutPayload;
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::assets::{AssetError, AssetRepo, etag_of};
use crate::store::now_ms;

type Result<T, E = AssetError> = std::result::Result<T, E>;

/// A rendition as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedRendition {
    pub name: String,
    pub etag: String,
    pub content_type: String,
    pub size: u64,
}

/// The published state of one asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    pub path: String,
    pub etag: String,
    pub size: u64,
    pub content_type: String,
    pub renditions: Vec<PublishedRendition>,
    /// When this version was published (ms since the epoch).
    pub published_at: i64,
    /// The job that published it.
    pub published_by: String,
}

/// What a `publish` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOutcome {
    /// False when this version was already published: nothing was copied.
    pub copied: bool,
    pub etag: String,
    pub published_at: i64,
    /// Renditions copied.
    pub renditions: u32,
}

fn asset_key(tenant: &str, path: &str) -> ObjectPath {
    ObjectPath::from(format!("assets/{tenant}{path}"))
}

fn rendition_key(tenant: &str, path: &str, name: &str) -> ObjectPath {
    ObjectPath::from(format!("renditions/{tenant}{path}/{name}"))
}

impl AssetRepo {
    /// The published state of the asset at `path`, if it is published.
    pub async fn published(&self, tenant: &str, path: &str) -> Result<Option<Published>> {
        let row = sqlx::query(
            "SELECT path, etag, size, content_type, renditions, published_at, published_by \
             FROM published WHERE tenant = $1 AND path = $2",
        )
        .bind(tenant)
        .bind(path)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| Published {
            path: row.get(0),
            etag: row.get(1),
            size: row.get::<i64, _>(2) as u64,
            content_type: row.get(3),
            renditions: serde_json::from_str(row.get::<&str, _>(4)).unwrap_or_default(),
            published_at: row.get(5),
            published_by: row.get(6),
        }))
    }

    /// Copies the asset at `path` and its renditions to the publish target,
    /// unless that version with those renditions is already there. Binaries
    /// are copied before the record changes, so a crash leaves the old record
    /// or a complete new copy.
    pub async fn publish(&self, tenant: &str, path: &str, by: &str) -> Result<PublishOutcome> {
        let stat = self
            .stat(tenant, path)
            .await?
            .ok_or_else(|| AssetError::NotFound(path.into()))?;
        let renditions = self.renditions(tenant, path).await?;
        let previous = self.published(tenant, path).await?;
        if let Some(p) = &previous {
            let same_renditions = p.renditions.len() == renditions.len()
                && p.renditions
                    .iter()
                    .zip(&renditions)
                    .all(|(a, b)| a.name == b.name && a.etag == b.etag);
            if p.etag == stat.etag && same_renditions {
                return Ok(PublishOutcome {
                    copied: false,
                    etag: p.etag.clone(),
                    published_at: p.published_at,
                    renditions: 0,
                });
            }
        }
        let data = self.read(tenant, path).await?;
        let etag = etag_of(&data);
        let size = data.len() as u64;
        self.published
            .put(&asset_key(tenant, path), PutPayload::from_bytes(data))
            .await?;
        let mut copied = Vec::with_capacity(renditions.len());
        for r in &renditions {
            let data = self.read_rendition(tenant, path, &r.name).await?;
            copied.push(PublishedRendition {
                name: r.name.clone(),
                etag: etag_of(&data),
                content_type: r.content_type.clone(),
                size: data.len() as u64,
            });
            self.published
                .put(
                    &rendition_key(tenant, path, &r.name),
                    PutPayload::from_bytes(data),
                )
                .await?;
        }
        let now = now_ms();
        sqlx::query(
            "INSERT INTO published (tenant, path, etag, size, content_type, renditions, published_at, published_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant, path) DO UPDATE SET \
             etag = excluded.etag, size = excluded.size, content_type = excluded.content_type, \
             renditions = excluded.renditions, published_at = excluded.published_at, \
             published_by = excluded.published_by",
        )
        .bind(tenant)
        .bind(path)
        .bind(&etag)
        .bind(size as i64)
        .bind(&stat.content_type)
        .bind(serde_json::to_string(&copied).expect("renditions serialize"))
        .bind(now)
        .bind(by)
        .execute(&self.pool)
        .await?;
        for stale in previous.iter().flat_map(|p| &p.renditions) {
            if !copied.iter().any(|c| c.name == stale.name) {
                self.remove_published(&rendition_key(tenant, path, &stale.name))
                    .await;
            }
        }
        Ok(PublishOutcome {
            copied: true,
            etag,
            published_at: now,
            renditions: copied.len() as u32,
        })
    }

    /// Removes the asset at `path` and its renditions from the publish
    /// target; false if it was not published.
    pub async fn unpublish(&self, tenant: &str, path: &str) -> Result<bool> {
        let Some(previous) = self.published(tenant, path).await? else {
            return Ok(false);
        };
        sqlx::query("DELETE FROM published WHERE tenant = $1 AND path = $2")
            .bind(tenant)
            .bind(path)
            .execute(&self.pool)
            .await?;
        self.remove_published(&asset_key(tenant, path)).await;
        for r in &previous.renditions {
            self.remove_published(&rendition_key(tenant, path, &r.name))
                .await;
        }
        Ok(true)
    }

    /// The published binary of an asset or one of its renditions, with its
    /// media type and etag; `None` if not published.
    pub async fn read_published(
        &self,
        tenant: &str,
        path: &str,
        rendition: Option<&str>,
    ) -> Result<Option<(Bytes, String, String)>> {
        let Some(p) = self.published(tenant, path).await? else {
            return Ok(None);
        };
        let (key, content_type, etag) = match rendition {
            None => (asset_key(tenant, path), p.content_type, p.etag),
            Some(name) => match p.renditions.into_iter().find(|r| r.name == name) {
                Some(r) => (rendition_key(tenant, path, name), r.content_type, r.etag),
                None => return Ok(None),
            },
        };
        let data = self.published.get(&key).await?.bytes().await?;
        Ok(Some((data, content_type, etag)))
    }

    async fn remove_published(&self, key: &ObjectPath) {
        match self.published.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(%key, error = %e, "unpublished binary stays in the publish target")
            }
        }
    }
}
