//! Where binaries live: the asset store, the rendition store and the publish
//! target, as local directories (the default) or S3 prefixes chosen by `s3://` URLs.

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use thiserror::Error;

/// Why the object stores could not be opened.
#[derive(Debug, Error)]
pub enum ObjectsError {
    #[error("--{flag} {url:?}: {reason}")]
    BadUrl {
        flag: &'static str,
        url: String,
        reason: String,
    },
    #[error(
        "--assets-url and --publish-url overlap (bucket {bucket:?}): give the publish target a prefix or bucket of its own"
    )]
    Overlap { bucket: String },
    #[error("--{flag} {url:?}: {source}")]
    Store {
        flag: &'static str,
        url: String,
        source: object_store::Error,
    },
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// A prefix of an S3 bucket, parsed from `s3://BUCKET/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Slash-separated, without leading or trailing slash; empty for the whole bucket.
    pub prefix: String,
}

impl S3Location {
    /// The location `name` below this one.
    pub fn child(&self, name: &str) -> S3Location {
        let prefix = match self.prefix.as_str() {
            "" => name.to_string(),
            p => format!("{p}/{name}"),
        };
        S3Location {
            bucket: self.bucket.clone(),
            prefix,
        }
    }

    /// True if one location lies within the other (same bucket, one prefix
    /// a whole-segment prefix of the other), so their keys could collide.
    pub fn overlaps(&self, other: &S3Location) -> bool {
        fn within(inner: &str, outer: &str) -> bool {
            outer.is_empty()
                || inner == outer
                || inner
                    .strip_prefix(outer)
                    .is_some_and(|rest| rest.starts_with('/'))
        }
        self.bucket == other.bucket
            && (within(&self.prefix, &other.prefix) || within(&other.prefix, &self.prefix))
    }
}

/// Parses `s3://BUCKET` or `s3://BUCKET/PREFIX`. Bucket names follow S3's
/// rules (3-63 of a-z, 0-9, '.', '-', starting and ending with a letter or digit);
/// the prefix is a path of non-empty segments without `.` or `..`.
pub fn parse_s3_url(url: &str) -> Result<S3Location, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("expected s3://BUCKET/PREFIX".into());
    };
    if scheme != "s3" {
        return Err(format!(
            "unknown scheme {scheme:?}: expected s3://BUCKET/PREFIX"
        ));
    }
    if rest.contains(['?', '#']) {
        return Err("a query or fragment is not allowed".into());
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err("the bucket is missing: expected s3://BUCKET/PREFIX".into());
    }
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !bucket_ok {
        return Err(format!(
            "bucket {bucket:?} must be 3-63 of a-z, 0-9, '.' and '-', starting and ending with a letter or digit"
        ));
    }
    let prefix = prefix.trim_end_matches('/');
    if !prefix.is_empty() {
        if let Some(bad) = prefix
            .split('/')
            .find(|s| s.is_empty() || *s == "." || *s == "..")
        {
            return Err(format!("prefix {prefix:?} has a bad segment {bad:?}"));
        }
        ObjectPath::parse(prefix).map_err(|e| format!("prefix {prefix:?}: {e}"))?;
    }
    Ok(S3Location {
        bucket: bucket.into(),
        prefix: prefix.into(),
    })
}

/// Where the asset repository and the publish target keep their binaries.
/// Without a URL, the local directories of the data directory.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StoreUrls {
    /// The asset store as s3://BUCKET/PREFIX: binaries go under PREFIX/assets/,
    /// renditions under PREFIX/renditions/. Endpoint, region and credentials come
    /// from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
    /// and AWS_ALLOW_HTTP [default: DATA_DIR/assets and DATA_DIR/renditions].
    #[arg(long, env = "WASMQ_ASSETS_URL")]
    pub assets_url: Option<String>,
    /// The publish target as s3://BUCKET/PREFIX, apart from the asset store
    /// (same AWS_* variables) [default: DATA_DIR/published].
    #[arg(long, env = "WASMQ_PUBLISH_URL")]
    pub publish_url: Option<String>,
}

/// The three object stores of an asset repository.
pub struct ObjectStores {
    /// Asset binaries, keyed `TENANT/PATH`.
    pub assets: Arc<dyn ObjectStore>,
    /// Renditions, keyed `TENANT/PATH/NAME`.
    pub renditions: Arc<dyn ObjectStore>,
    /// The publish target (see `publish`).
    pub published: Arc<dyn ObjectStore>,
}

impl ObjectStores {
    /// Opens the stores `urls` names, local directories for those it does
    /// not. Each S3 prefix is listed once, so a wrong endpoint, bucket or
    /// credential fails here with the URL it belongs to, not at the first job.
    pub async fn open(
        urls: &StoreUrls,
        assets_dir: &Path,
        renditions_dir: &Path,
        published_dir: &Path,
    ) -> Result<Self, ObjectsError> {
        let assets = target("assets-url", urls.assets_url.as_deref())?;
        let published = target("publish-url", urls.publish_url.as_deref())?;
        if let (Some(a), Some(p)) = (&assets, &published)
            && a.at.overlaps(&p.at)
        {
            return Err(ObjectsError::Overlap {
                bucket: a.at.bucket.clone(),
            });
        }
        let (assets, renditions) = match &assets {
            Some(t) => (
                s3(t, &t.at.child("assets")).await?,
                s3(t, &t.at.child("renditions")).await?,
            ),
            None => (local(assets_dir)?, local(renditions_dir)?),
        };
        let published = match &published {
            Some(t) => s3(t, &t.at).await?,
            None => local(published_dir)?,
        };
        Ok(ObjectStores {
            assets,
            renditions,
            published,
        })
    }
}

/// An S3 location with the option and URL it came from, for error messages.
struct Target<'a> {
    flag: &'static str,
    url: &'a str,
    at: S3Location,
}

fn target<'a>(
    flag: &'static str,
    url: Option<&'a str>,
) -> Result<Option<Target<'a>>, ObjectsError> {
    let Some(url) = url else { return Ok(None) };
    let at = parse_s3_url(url).map_err(|reason| ObjectsError::BadUrl {
        flag,
        url: url.into(),
        reason,
    })?;
    Ok(Some(Target { flag, url, at }))
}

/// A store rooted at the local directory `root`, created if missing.
pub fn local(root: &Path) -> Result<Arc<dyn ObjectStore>, ObjectsError> {
    std::fs::create_dir_all(root).map_err(|e| ObjectsError::Io(root.display().to_string(), e))?;
    let store = LocalFileSystem::new_with_prefix(root)
        .map_err(|e| ObjectsError::Io(root.display().to_string(), std::io::Error::other(e)))?;
    Ok(Arc::new(store))
}

/// A store on `at` (within `target`) configured from the `AWS_*` environment,
/// listed once to prove it answers.
async fn s3(target: &Target<'_>, at: &S3Location) -> Result<Arc<dyn ObjectStore>, ObjectsError> {
    let failed = |source| ObjectsError::Store {
        flag: target.flag,
        url: target.url.into(),
        source,
    };
    let bucket = AmazonS3Builder::from_env()
        .with_bucket_name(&at.bucket)
        .build()
        .map_err(failed)?;
    let store = PrefixStore::new(bucket, at.prefix.as_str());
    store.list_with_delimiter(None).await.map_err(failed)?;
    tracing::info!(flag = target.flag, bucket = %at.bucket, prefix = %at.prefix, "S3 object store");
    Ok(Arc::new(store))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(bucket: &str, prefix: &str) -> S3Location {
        S3Location {
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    #[test]
    fn parses_bucket_and_prefix() {
        assert_eq!(parse_s3_url("s3://media"), Ok(at("media", "")));
        assert_eq!(parse_s3_url("s3://media/"), Ok(at("media", "")));
        assert_eq!(
            parse_s3_url("s3://my.media-1/wasmq/prod/"),
            Ok(at("my.media-1", "wasmq/prod"))
        );
    }

    #[test]
    fn refuses_other_schemes_and_bad_buckets() {
        for (url, says) in [
            ("gs://media/x", "unknown scheme \"gs\""),
            ("file:///tmp/x", "unknown scheme \"file\""),
            ("media/x", "expected s3://BUCKET/PREFIX"),
            ("s3://", "bucket is missing"),
            ("s3:///prefix", "bucket is missing"),
            ("s3://Media/x", "bucket \"Media\""),
            ("s3://ab/x", "bucket \"ab\""),
            ("s3://-media/x", "bucket \"-media\""),
            ("s3://key:secret@media/x", "bucket \"key:secret@media\""),
            ("s3://media/a//b", "bad segment \"\""),
            ("s3://media/a/../b", "bad segment \"..\""),
            ("s3://media/a?versionId=1", "query or fragment"),
        ] {
            let err = parse_s3_url(url).expect_err(url);
            assert!(err.contains(says), "{url}: {err}");
        }
    }

    #[test]
    fn child_locations_are_siblings_under_the_prefix() {
        assert_eq!(at("b", "p").child("assets"), at("b", "p/assets"));
        assert_eq!(at("b", "").child("renditions"), at("b", "renditions"));
    }

    #[test]
    fn overlap_is_by_bucket_and_whole_segments() {
        assert!(at("b", "p").overlaps(&at("b", "p")));
        assert!(at("b", "p").overlaps(&at("b", "p/pub")));
        assert!(at("b", "p/pub").overlaps(&at("b", "p")));
        assert!(at("b", "").overlaps(&at("b", "pub")));
        assert!(!at("b", "p").overlaps(&at("b", "pub")));
        assert!(!at("b", "p").overlaps(&at("c", "p")));
        assert!(!at("b", "assets").overlaps(&at("b", "published")));
    }
}
