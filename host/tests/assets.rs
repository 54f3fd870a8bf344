//! The asset repository on a real database (SQLite and PostgreSQL) and a real
//! local directory: import, listing, references, delete, move and typed metadata.

mod backends;

use backends::{Engine, TestDb, database};
use bytes::Bytes;
use wasmq::assets::{AssetRepo, MetaValue, Property};
use wasmq::paths::Scope;
use wasmq::store::Store;

/// A temporary directory for the binaries, with the database it belongs with.
struct Dirs {
    dir: tempfile::TempDir,
    _db: TestDb,
}

impl Dirs {
    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

async fn open(engine: Engine) -> (Dirs, AssetRepo) {
    let dir = tempfile::tempdir().unwrap();
    let db = database(engine).await;
    let store = Store::connect(&db.url).await.unwrap();
    let repo = AssetRepo::local(
        store.pool().clone(),
        &dir.path().join("assets"),
        &dir.path().join("renditions"),
        &dir.path().join("published"),
    )
    .unwrap();
    (Dirs { dir, _db: db }, repo)
}

async fn import_lists_and_records_references(engine: Engine) {
    let (dir, repo) = open(engine).await;
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
        targets: vec![],
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

async fn delete_removes_binary_row_metadata_and_outgoing_references(engine: Engine) {
    let (dir, repo) = open(engine).await;
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

async fn move_keeps_the_asset_whole_and_references_follow(engine: Engine) {
    let (dir, repo) = open(engine).await;
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

async fn metadata_round_trips_types_and_multi_values(engine: Engine) {
    let (_dir, repo) = open(engine).await;
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

async fn renditions_move_publish_and_go_with_their_asset(engine: Engine) {
    let (dir, repo) = open(engine).await;
    repo.write("t", "/c/a.png", Bytes::from_static(b"png"), "image/png")
        .await
        .unwrap();
    assert!(matches!(
        repo.write_rendition("t", "/c/none.png", "x.png", Bytes::new(), "image/png")
            .await,
        Err(wasmq::assets::AssetError::NotFound(_))
    ));
    assert!(
        repo.write_rendition("t", "/c/a.png", "../x", Bytes::new(), "image/png")
            .await
            .is_err()
    );
    repo.write_rendition(
        "t",
        "/c/a.png",
        "thumb.png",
        Bytes::from_static(b"small"),
        "image/png",
    )
    .await
    .unwrap();

    let first = repo.publish("t", "/c/a.png", "job1").await.unwrap();
    assert!(first.copied);
    assert_eq!(first.renditions, 1);
    let again = repo.publish("t", "/c/a.png", "job2").await.unwrap();
    assert!(!again.copied, "unchanged: nothing copied");
    assert_eq!(again.published_at, first.published_at);
    let (data, content_type, _) = repo
        .read_published("t", "/c/a.png", Some("thumb.png"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (&data[..], content_type.as_str()),
        (&b"small"[..], "image/png")
    );

    // A rendition changed: published again.
    repo.write_rendition(
        "t",
        "/c/a.png",
        "thumb.png",
        Bytes::from_static(b"smaller"),
        "image/png",
    )
    .await
    .unwrap();
    assert!(repo.publish("t", "/c/a.png", "job3").await.unwrap().copied);

    repo.move_asset("t", "/c/a.png", "/d/b.png").await.unwrap();
    assert!(repo.renditions("t", "/c/a.png").await.unwrap().is_empty());
    assert_eq!(
        &repo
            .read_rendition("t", "/d/b.png", "thumb.png")
            .await
            .unwrap()[..],
        b"smaller"
    );
    assert!(!dir.path().join("renditions/t/c/a.png/thumb.png").exists());

    assert!(repo.delete("t", "/d/b.png").await.unwrap());
    assert!(repo.renditions("t", "/d/b.png").await.unwrap().is_empty());
    assert!(!dir.path().join("renditions/t/d/b.png/thumb.png").exists());

    // The published copy outlives the asset until it is unpublished.
    assert!(
        repo.read_published("t", "/c/a.png", None)
            .await
            .unwrap()
            .is_some()
    );
    assert!(repo.unpublish("t", "/c/a.png").await.unwrap());
    assert!(
        repo.read_published("t", "/c/a.png", None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!dir.path().join("published/assets/t/c/a.png").exists());
    assert!(
        !dir.path()
            .join("published/renditions/t/c/a.png/thumb.png")
            .exists()
    );
    assert!(!repo.unpublish("t", "/c/a.png").await.unwrap());
}

async fn a_move_rewrites_referring_texts_and_keeps_the_references(engine: Engine) {
    let (_dir, repo) = open(engine).await;
    repo.write(
        "t",
        "/content/img/a.png",
        Bytes::from_static(b"png"),
        "image/png",
    )
    .await
    .unwrap();
    let page = r#"<img src="/content/img/a.png"> and "/content/img/a.png2""#;
    repo.write("t", "/content/p/index.html", Bytes::from(page), "text/html")
        .await
        .unwrap();
    repo.write(
        "t",
        "/content/p/raw.bin",
        Bytes::from_static(b"/content/img/a.png"),
        "application/octet-stream",
    )
    .await
    .unwrap();
    assert_eq!(
        repo.referrers("t", "/content/img/a.png").await.unwrap(),
        vec!["/content/p/index.html"]
    );

    repo.move_asset("t", "/content/img/a.png", "/content/d/a.png")
        .await
        .unwrap();
    let text = repo.read("t", "/content/p/index.html").await.unwrap();
    assert_eq!(
        &text[..],
        br#"<img src="/content/d/a.png"> and "/content/img/a.png2""#
    );
    assert_eq!(
        &repo.read("t", "/content/p/raw.bin").await.unwrap()[..],
        b"/content/img/a.png"
    );
    assert_eq!(
        repo.referrers("t", "/content/d/a.png").await.unwrap(),
        vec!["/content/p/index.html"]
    );
    assert!(
        repo.referrers("t", "/content/img/a.png")
            .await
            .unwrap()
            .is_empty()
    );
}

on_both_engines!(
    import_lists_and_records_references,
    delete_removes_binary_row_metadata_and_outgoing_references,
    move_keeps_the_asset_whole_and_references_follow,
    metadata_round_trips_types_and_multi_values,
    renditions_move_publish_and_go_with_their_asset,
    a_move_rewrites_referring_texts_and_keeps_the_references,
);
