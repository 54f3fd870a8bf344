//! The asset repository on a real SQLite file and a real local directory:
//! import, listing, references, delete, move and typed metadata.

use bytes::Bytes;
use wasmq::assets::{AssetRepo, MetaValue, Property};
use wasmq::paths::Scope;
use wasmq::store::Store;

async fn open() -> (tempfile::TempDir, AssetRepo) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("wasmq.db")).await.unwrap();
    let repo = AssetRepo::local(store.pool().clone(), &dir.path().join("assets")).unwrap();
    (dir, repo)
}

#[tokio::test]
async fn import_lists_and_records_references() {
    let (dir, repo) = open().await;
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("img/deep")).unwrap();
    std::fs::write(src.join("img/a.png"), b"png-a").unwrap();
    std::fs::write(src.join("img/deep/b.png"), b"png-b").unwrap();
    std::fs::write(
        src.join("page.html"),
        r#"<img src="/content/dam/s/img/a.png"><a href="/content/dam/s/missing">"#,
    )
    .unwrap();
    let (count, refs) = repo.import_dir("t", &src, "/content/dam/s").await.unwrap();
    assert_eq!(
        (count, refs),
        (3, 1),
        "a reference to a missing asset is not recorded"
    );
    assert!(
        dir.path()
            .join("assets/t/content/dam/s/img/deep/b.png")
            .is_file()
    );

    let all = repo
        .list("t", "/content/dam/s", true, None, 100, None)
        .await
        .unwrap();
    let paths: Vec<_> = all.assets.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/content/dam/s/img/a.png",
            "/content/dam/s/img/deep/b.png",
            "/content/dam/s/page.html"
        ]
    );
    let top = repo
        .list("t", "/content/dam/s/img", false, None, 100, None)
        .await
        .unwrap();
    assert_eq!(top.assets.len(), 1, "not recursive: only direct children");
    assert!(
        repo.list("other", "/content/dam/s", true, None, 100, None)
            .await
            .unwrap()
            .assets
            .is_empty()
    );

    // Pages of one continue where the last ended.
    let first = repo
        .list("t", "/content/dam/s", true, None, 1, None)
        .await
        .unwrap();
    let second = repo
        .list(
            "t",
            "/content/dam/s",
            true,
            first.next_cursor.as_deref(),
            1,
            None,
        )
        .await
        .unwrap();
    assert_eq!(second.assets[0].path, "/content/dam/s/img/deep/b.png");

    let scope = Scope {
        root: "/content/dam/s".into(),
        excluded: vec!["/content/dam/s/img".into()],
    };
    let scoped = repo
        .list("t", "/content/dam/s", true, None, 100, Some(&scope))
        .await
        .unwrap();
    assert_eq!(scoped.assets.len(), 1);

    assert_eq!(
        repo.referrers("t", "/content/dam/s/img/a.png")
            .await
            .unwrap(),
        ["/content/dam/s/page.html"]
    );
    assert_eq!(
        repo.references("t", "/content/dam/s/page.html")
            .await
            .unwrap(),
        ["/content/dam/s/img/a.png"]
    );
}

#[tokio::test]
async fn delete_removes_binary_row_metadata_and_outgoing_references() {
    let (dir, repo) = open().await;
    repo.write(
        "t",
        "/content/c/a.png",
        Bytes::from_static(b"a"),
        "image/png",
    )
    .await
    .unwrap();
    repo.write(
        "t",
        "/content/c/p.html",
        Bytes::from_static(b"<img src='/content/c/a.png'>"),
        "text/html",
    )
    .await
    .unwrap();
    repo.set_metadata(
        "t",
        "/content/c/p.html",
        &[Property {
            name: "dc:title".into(),
            values: vec![MetaValue::Text("P".into())],
        }],
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        repo.referrers("t", "/content/c/a.png").await.unwrap(),
        ["/content/c/p.html"]
    );
    assert!(repo.delete("t", "/content/c/p.html").await.unwrap());
    assert!(
        !repo.delete("t", "/content/c/p.html").await.unwrap(),
        "deleting twice is not an error"
    );
    assert!(repo.stat("t", "/content/c/p.html").await.unwrap().is_none());
    assert!(!dir.path().join("assets/t/content/c/p.html").exists());
    assert!(
        repo.referrers("t", "/content/c/a.png")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(repo.metadata("t", "/content/c/p.html").await.is_err());
}

#[tokio::test]
async fn move_keeps_the_asset_whole_and_references_follow() {
    let (dir, repo) = open().await;
    let a = repo
        .write(
            "t",
            "/content/c/a.png",
            Bytes::from_static(b"a"),
            "image/png",
        )
        .await
        .unwrap();
    repo.write(
        "t",
        "/content/c/p.html",
        Bytes::from_static(b"<img src='/content/c/a.png'>"),
        "text/html",
    )
    .await
    .unwrap();
    repo.write(
        "t",
        "/content/c/taken",
        Bytes::from_static(b"x"),
        "text/plain",
    )
    .await
    .unwrap();
    assert!(
        repo.move_asset("t", "/content/c/a.png", "/content/c/taken")
            .await
            .is_err(),
        "no overwrite"
    );
    let moved = repo
        .move_asset("t", "/content/c/a.png", "/content/d/a.png")
        .await
        .unwrap();
    assert_eq!(moved.etag, a.etag);
    assert!(dir.path().join("assets/t/content/d/a.png").is_file());
    assert!(!dir.path().join("assets/t/content/c/a.png").exists());
    assert_eq!(
        repo.references("t", "/content/c/p.html").await.unwrap(),
        ["/content/d/a.png"]
    );
    assert_eq!(
        repo.read("t", "/content/d/a.png").await.unwrap().as_ref(),
        b"a"
    );
}

#[tokio::test]
async fn metadata_round_trips_types_and_multi_values() {
    let (_dir, repo) = open().await;
    repo.write("t", "/c/a.png", Bytes::from_static(b"a"), "image/png")
        .await
        .unwrap();
    let props = vec![
        Property {
            name: "dc:subject".into(),
            values: vec![MetaValue::Text("x".into()), MetaValue::Text("y|z".into())],
        },
        Property {
            name: "tiff:ImageWidth".into(),
            values: vec![MetaValue::Long(-4032)],
        },
        Property {
            name: "x:ratio".into(),
            values: vec![MetaValue::Double(0.1 + 0.2)],
        },
        Property {
            name: "x:flag".into(),
            values: vec![MetaValue::Boolean(true)],
        },
        Property {
            name: "x:when".into(),
            values: vec![MetaValue::Date("2026-11-24T10:00:00Z".into())],
        },
    ];
    repo.set_metadata("t", "/c/a.png", &props, false)
        .await
        .unwrap();
    let mut expected = props.clone();
    expected.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(repo.metadata("t", "/c/a.png").await.unwrap(), expected);

    // Merge keeps the others; a property with no values is removed; replace drops the rest.
    repo.set_metadata(
        "t",
        "/c/a.png",
        &[Property {
            name: "x:flag".into(),
            values: vec![],
        }],
        false,
    )
    .await
    .unwrap();
    assert_eq!(repo.metadata("t", "/c/a.png").await.unwrap().len(), 4);
    repo.set_metadata(
        "t",
        "/c/a.png",
        &[Property {
            name: "dc:title".into(),
            values: vec![MetaValue::Text("T".into())],
        }],
        true,
    )
    .await
    .unwrap();
    assert_eq!(repo.metadata("t", "/c/a.png").await.unwrap().len(), 1);
    let nan = [Property {
        name: "x:bad".into(),
        values: vec![MetaValue::Double(f64::NAN)],
    }];
    assert!(
        repo.set_metadata("t", "/c/a.png", &nan, false)
            .await
            .is_err()
    );
}
