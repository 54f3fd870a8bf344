//! Asset path syntax and job scoping: what a valid `/content/dam/...` path is,
//! and whether a path lies under a job's root and outside its excluded paths.

use thiserror::Error;

/// Why a path was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PathError {
    #[error("must not be empty")]
    Empty,
    #[error("must be absolute (start with '/')")]
    Relative,
    #[error("must not contain empty segments ('//') or end with '/'")]
    EmptySegment,
    #[error("must not contain '.' or '..' segments")]
    DotSegment,
    #[error("must not contain control characters or backslashes")]
    BadCharacter,
    #[error("is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
}

/// The longest path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 1024;

/// Checks that `path` is an absolute, normalized asset path. `/` alone is the root.
pub fn validate(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if !path.starts_with('/') {
        return Err(PathError::Relative);
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(PathError::BadCharacter);
    }
    if path == "/" {
        return Ok(());
    }
    for segment in path[1..].split('/') {
        match segment {
            "" => return Err(PathError::EmptySegment),
            "." | ".." => return Err(PathError::DotSegment),
            _ => {}
        }
    }
    Ok(())
}

/// True if `path` is `root` or lies below it, segment-wise (`/a/bc` is not under `/a/b`).
pub fn is_under(path: &str, root: &str) -> bool {
    if root == "/" {
        return path.starts_with('/');
    }
    path == root || (path.starts_with(root) && path.as_bytes().get(root.len()) == Some(&b'/'))
}

/// The part of the asset namespace a job may touch: its root and its targets
/// (paths its params name as destinations), minus excluded subtrees.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    /// The job's root path.
    pub root: String,
    /// Subtrees the job must leave alone.
    pub excluded: Vec<String>,
    /// More subtrees the job may touch: the values of the params its
    /// plugin's schema marks as targets (a move's destination, an export's file).
    pub targets: Vec<String>,
}

impl Scope {
    /// True if `path` is under the root or a target, and under no excluded path.
    pub fn contains(&self, path: &str) -> bool {
        (is_under(path, &self.root) || self.targets.iter().any(|t| is_under(path, t)))
            && !self.excluded.iter().any(|x| is_under(path, x))
    }
}

/// The key range `[start, end)` that holds every path strictly below `folder`,
/// in byte order: `folder + "/"` up to `folder + "0"` ('0' follows '/').
pub fn descendants_range(folder: &str) -> (String, String) {
    let base = folder.trim_end_matches('/');
    (format!("{base}/"), format!("{base}0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_covers_root_and_targets_minus_excluded() {
        let scope = Scope {
            root: "/content/a".into(),
            excluded: vec!["/content/a/x".into(), "/content/b/private".into()],
            targets: vec!["/content/b".into()],
        };
        assert!(scope.contains("/content/a/1.png"));
        assert!(scope.contains("/content/b/new/1.png"));
        assert!(!scope.contains("/content/a/x/1.png"));
        assert!(!scope.contains("/content/b/private/1.png"));
        assert!(!scope.contains("/content/c/1.png"));
        assert!(!scope.contains("/content/bb"));
    }

    #[test]
    fn accepts_normal_paths() {
        for p in [
            "/",
            "/content",
            "/content/dam/a b/ü.png",
            "/x/.hidden",
            "/x/..y",
        ] {
            assert_eq!(validate(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn refuses_bad_paths() {
        assert_eq!(validate(""), Err(PathError::Empty));
        assert_eq!(validate("content/dam"), Err(PathError::Relative));
        assert_eq!(validate("/content//dam"), Err(PathError::EmptySegment));
        assert_eq!(validate("/content/dam/"), Err(PathError::EmptySegment));
        assert_eq!(validate("/content/../etc"), Err(PathError::DotSegment));
        assert_eq!(validate("/content/./x"), Err(PathError::DotSegment));
        assert_eq!(validate("/a\\b"), Err(PathError::BadCharacter));
        assert_eq!(validate("/a\nb"), Err(PathError::BadCharacter));
        assert_eq!(
            validate(&format!("/{}", "a".repeat(MAX_PATH_LEN))),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn under_is_segment_wise() {
        assert!(is_under("/a/b", "/a/b"));
        assert!(is_under("/a/b/c", "/a/b"));
        assert!(!is_under("/a/bc", "/a/b"));
        assert!(!is_under("/a", "/a/b"));
        assert!(is_under("/anything", "/"));
    }

    #[test]
    fn scope_excludes_subtrees() {
        let scope = Scope {
            root: "/c".into(),
            excluded: vec!["/c/keep".into()],
            targets: vec![],
        };
        assert!(scope.contains("/c/x"));
        assert!(!scope.contains("/c/keep"));
        assert!(!scope.contains("/c/keep/deep"));
        assert!(scope.contains("/c/keeper"));
        assert!(!scope.contains("/d"));
    }

    #[test]
    fn descendants_range_brackets_children_only() {
        let (start, end) = descendants_range("/a/b");
        for inside in ["/a/b/x", "/a/b/x/y", "/a/b/~"] {
            assert!(
                inside >= start.as_str() && inside < end.as_str(),
                "{inside}"
            );
        }
        for outside in ["/a/b", "/a/b-c", "/a/b0", "/a/c"] {
            assert!(
                !(outside >= start.as_str() && outside < end.as_str()),
                "{outside}"
            );
        }
    }
}
