//! The metadata-import and metadata-export job types end to end: real photographs
//! and their real EXIF/IPTC/XMP (exiftool), CSVs uploaded and downloaded over HTTP.
//!
//! Needs `scripts/corpus-metadata.sh` (Pillow's test photographs and `exiftool -csv`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use damcsv::{Column, Kind, Value};
use serde_json::json;
use wasmq_e2e::{Options, Server, task};

const PLUGINS: [&str; 2] = ["wasmq_metadata_import", "wasmq_metadata_export"];

/// Metadata by asset path, then by property name.
type Metadata = BTreeMap<String, BTreeMap<String, Vec<Value>>>;

fn corpus() -> PathBuf {
    wasmq_e2e::corpus("metadata", "exiftool.csv")
}

fn server() -> Server {
    Server::start(Options {
        plugins: PLUGINS.to_vec(),
        ..Default::default()
    })
}

/// `PUT /api/v1/assets{path}` with `body`; asserts 200 or 201.
async fn upload(server: &Server, path: &str, body: String) {
    let (status, answer) = server
        .send(
            server
                .request(reqwest::Method::PUT, &format!("/api/v1/assets{path}"))
                .header("content-type", "text/csv")
                .body(body),
        )
        .await;
    assert!(
        status == 200 || status == 201,
        "upload {path}: {status} {answer}"
    );
}

/// `GET /api/v1/assets{path}` as text.
async fn download(server: &Server, path: &str) -> String {
    let response = server
        .request(reqwest::Method::GET, &format!("/api/v1/assets{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "download {path}");
    response.text().await.unwrap()
}

/// Submits a job and waits for its end.
async fn run(server: &Server, body: serde_json::Value) -> (String, serde_json::Value) {
    let id = server.submit(&body).await;
    let job = server.wait_done(&id).await;
    (id, job)
}

/// The job's report (`GET /api/v1/jobs/{id}/report`) as records of fields.
async fn report(server: &Server, id: &str) -> Vec<Vec<String>> {
    let text = server.report(id).await;
    let records = damcsv::records(&text).unwrap();
    assert_eq!(
        records[0].1,
        ["path", "etag", "status", "httpStatusCode", "message"]
    );
    records.into_iter().skip(1).map(|(_, f)| f).collect()
}

/// The metadata of every asset under `root`, read from the database itself.
async fn stored(server: &Server, root: &str) -> Metadata {
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        server.data_dir().join("wasmq.db").display()
    ))
    .await
    .unwrap();
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT path, name, kind, value FROM metadata WHERE tenant = 'default' AND path LIKE ? ORDER BY path, name, idx",
    )
    .bind(format!("{root}/%"))
    .fetch_all(&db)
    .await
    .unwrap();
    let mut out = Metadata::new();
    for (path, name, kind, value) in rows {
        let value = match kind.as_str() {
            "text" => Value::String(value),
            "long" => Value::Long(value.parse().unwrap()),
            "double" => Value::Double(value.parse().unwrap()),
            "boolean" => Value::Boolean(value == "true"),
            "date" => Value::Date(value),
            other => panic!("unknown kind {other}"),
        };
        let relative = path.strip_prefix(root).unwrap().to_string();
        out.entry(relative)
            .or_default()
            .entry(name)
            .or_default()
            .push(value);
    }
    out
}

/// An exiftool date (`2018:10:27 13:27:23.53-05:00`, `2024:05:07`) as ISO 8601.
fn iso_date(text: &str) -> Option<String> {
    let b = text.as_bytes();
    if b.len() < 10 || b[4] != b':' || b[7] != b':' {
        return None;
    }
    let iso = format!("{}-{}-{}", &text[..4], &text[5..7], &text[8..]).replacen(' ', "T", 1);
    let date = Column {
        name: "d".into(),
        kind: Kind::Date,
        multi: false,
    };
    damcsv::parse_cell(&date, &iso).ok().map(|_| iso)
}

/// How the test types one exiftool value, given the column's kind.
fn typed(kind: Kind, item: &str) -> Value {
    match kind {
        Kind::Long => Value::Long(item.parse().unwrap()),
        Kind::Double => Value::Double(item.trim().parse().unwrap()),
        Kind::Boolean => Value::Boolean(item.eq_ignore_ascii_case("true")),
        Kind::Date => Value::Date(iso_date(item).unwrap()),
        Kind::String => Value::String(item.to_string()),
    }
}

/// The kind every item fits: Long, Double, Boolean, Date, else String.
fn infer(items: &[&str]) -> Kind {
    let all = |f: &dyn Fn(&str) -> bool| items.iter().all(|i| f(i));
    if all(&|i| i.parse::<i64>().is_ok_and(|n| n.to_string() == i)) {
        Kind::Long
    } else if all(&|i| {
        i.parse::<f64>().is_ok_and(f64::is_finite) && !i.contains(['i', 'I', 'n', 'N'])
    }) {
        Kind::Double
    } else if all(&|i| i.eq_ignore_ascii_case("true") || i.eq_ignore_ascii_case("false")) {
        Kind::Boolean
    } else if all(&|i| iso_date(i).is_some()) {
        Kind::Date
    } else {
        Kind::String
    }
}

/// Converts `exiftool -csv -sep '|'` output to the DAM format under `root`:
/// a column is multi when a cell holds a `|` list, and typed by what all its items fit.
/// Returns the CSV, its columns and the typed metadata it carries.
fn dam_from_exiftool(exif: &str, root: &str) -> (String, Vec<Column>, Metadata) {
    let records = damcsv::records(exif).unwrap();
    let header = &records[0].1;
    assert_eq!(header[0], "SourceFile");
    let rows: Vec<&Vec<String>> = records[1..].iter().map(|(_, f)| f).collect();
    let mut columns = Vec::new();
    for (i, name) in header.iter().enumerate().skip(1) {
        let cells: Vec<&str> = rows
            .iter()
            .map(|r| r[i].as_str())
            .filter(|c| !c.is_empty())
            .collect();
        let multi = cells.iter().any(|c| c.contains('|'));
        let items: Vec<&str> = cells.iter().flat_map(|c| c.split('|')).collect();
        columns.push(Column {
            name: name.clone(),
            kind: infer(&items),
            multi,
        });
    }
    let mut csv = damcsv::write_header(&columns);
    let mut metadata = Metadata::new();
    for row in &rows {
        let path = format!("/{}", row[0]);
        let mut cells = Vec::new();
        for (column, cell) in columns.iter().zip(&row[1..]) {
            let items: Vec<&str> = match (cell.is_empty(), column.multi) {
                (true, _) => vec![],
                (false, true) => cell.split('|').collect(),
                (false, false) => vec![cell.as_str()],
            };
            let values: Vec<Value> = items.iter().map(|i| typed(column.kind, i)).collect();
            if !values.is_empty() {
                metadata
                    .entry(path.clone())
                    .or_default()
                    .insert(column.name.clone(), values.clone());
            }
            cells.push(values);
        }
        csv.push_str(&damcsv::write_row(
            &format!("{root}{path}"),
            &columns,
            &cells,
        ));
    }
    (csv, columns, metadata)
}

/// The CSV with every assetPath under `from` moved under `to`.
fn rebase(csv: &str, from: &str, to: &str) -> String {
    let mut out = String::new();
    for (i, (_, mut fields)) in damcsv::records(csv).unwrap().into_iter().enumerate() {
        if i > 0 {
            fields[0] = format!("{to}{}", fields[0].strip_prefix(from).unwrap());
        }
        let line: Vec<String> = fields.iter().map(|f| damcsv::field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

fn import_dir(server: &Server, dir: &Path, root: &str, count: usize) {
    let out = server.import(dir, root);
    assert!(out.contains(&format!("imported {count} assets")), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn real_exif_survives_import_export_import_export() {
    let corpus = corpus();
    let exif = std::fs::read_to_string(corpus.join("exiftool.csv")).unwrap();
    let photos = corpus.join("images");
    let count = std::fs::read_dir(&photos).unwrap().count();
    assert!(count >= 10, "{count} photographs");

    let (first, second) = ("/content/dam/photos", "/content/dam/copy");
    let server = server();
    import_dir(&server, &photos, first, count);
    import_dir(&server, &photos, second, count);

    let (csv, columns, expected) = dam_from_exiftool(&exif, first);
    let kinds = |k: Kind| columns.iter().filter(|c| c.kind == k).count();
    assert!(
        columns.len() > 150
            && [
                Kind::Long,
                Kind::Double,
                Kind::Boolean,
                Kind::Date,
                Kind::String
            ]
            .iter()
            .all(|k| kinds(*k) > 0)
            && columns.iter().any(|c| c.multi),
        "real metadata of every kind: {columns:?}"
    );
    assert_eq!(
        expected.len(),
        count - 1,
        "every photograph but hopper.jpg has metadata"
    );

    // Import the real metadata (the CSV lies outside the job's path: a target).
    upload(&server, "/content/imports/exif.csv", csv).await;
    let (id, job) = run(
        &server,
        json!({"type": "metadata-import", "path": first, "params": {"csv": "/content/imports/exif.csv"}}),
    )
    .await;
    assert_eq!(job["state"], "Complete", "{job}");
    let tasks = server.tasks(&id).await;
    assert_eq!(tasks.len(), count);
    for t in &tasks {
        assert_eq!(t["code"], 200, "{t}");
    }
    assert_eq!(stored(&server, first).await, expected);

    // Export it, in path order, with the same typed columns; the parts are gone.
    let (id, job) = run(
        &server,
        json!({"type": "metadata-export", "path": first, "params": {"target": "/content/exports/photos.csv"}}),
    )
    .await;
    assert_eq!(job["state"], "Complete", "{job}");
    assert_eq!(server.tasks(&id).await.len(), 1, "12 assets make one part");
    let exported = download(&server, "/content/exports/photos.csv").await;
    let records = damcsv::records(&exported).unwrap();
    let mut header = damcsv::parse_header(&records[0].1).unwrap();
    // Columns empty on every photograph (exiftool lists empty tags) carry nothing.
    let mut sorted: Vec<Column> = columns
        .iter()
        .filter(|c| expected.values().any(|m| m.contains_key(&c.name)))
        .cloned()
        .collect();
    assert!(columns.len() - sorted.len() <= 5);
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    header.sort_by(|a, b| a.name.cmp(&b.name));
    let differ: Vec<(&Column, &Column)> =
        header.iter().zip(&sorted).filter(|(a, b)| a != b).collect();
    assert_eq!(header.len(), sorted.len());
    assert!(differ.is_empty(), "same names, kinds and multi: {differ:?}");
    let paths: Vec<&str> = records[1..].iter().map(|(_, f)| f[0].as_str()).collect();
    let mut in_order = paths.clone();
    in_order.sort();
    assert_eq!(paths, in_order);
    assert_eq!(paths.len(), count);
    let (status, parts) = server
        .get("/api/v1/renditions/content/exports/photos.csv")
        .await;
    assert_eq!(
        (status, parts),
        (200, json!([])),
        "part renditions are deleted"
    );

    // Re-import the export into the second folder (replace), export again: equal.
    upload(
        &server,
        "/content/imports/copy.csv",
        rebase(&exported, first, second),
    )
    .await;
    let (_, job) = run(
        &server,
        json!({"type": "metadata-import", "path": second, "params": {"csv": "/content/imports/copy.csv", "mode": "replace"}}),
    )
    .await;
    assert_eq!(job["state"], "Complete", "{job}");
    assert_eq!(stored(&server, second).await, expected, "values and types");
    let (_, job) = run(
        &server,
        json!({"type": "metadata-export", "path": second, "params": {"target": "/content/exports/copy.csv"}}),
    )
    .await;
    assert_eq!(job["state"], "Complete", "{job}");
    let again = download(&server, "/content/exports/copy.csv").await;
    assert_eq!(rebase(&again, second, first), exported);
}

#[tokio::test(flavor = "multi_thread")]
async fn merge_replace_and_rows_that_fail() {
    let corpus = corpus();
    let root = "/content/dam/shoot";
    let dir = tempfile::tempdir().unwrap();
    for name in ["flower.jpg", "hopper.jpg", "rgb.jpg"] {
        std::fs::copy(corpus.join("images").join(name), dir.path().join(name)).unwrap();
    }
    std::fs::create_dir(dir.path().join("keep")).unwrap();
    std::fs::copy(
        corpus.join("images/iptc.jpg"),
        dir.path().join("keep/iptc.jpg"),
    )
    .unwrap();
    let server = server();
    import_dir(&server, dir.path(), root, 4);
    import_dir(&server, &corpus.join("images"), "/content/dam/other", 12);

    let import = |csv: &str, mode: &str| {
        json!({"type": "metadata-import", "path": root, "excludedPaths": [format!("{root}/keep")],
               "params": {"csv": csv, "mode": mode, "batchSize": 2}})
    };
    upload(
        &server,
        "/content/imports/first.csv",
        format!(
            "assetPath,dc:title {{{{ String }}}},dc:subject {{{{ String : multi }}}},tiff:ImageWidth {{{{ Long }}}}\n\
             {root}/flower.jpg,\"Flower, red\",spring|garden,128\n\
             {root}/hopper.jpg,Hopper,,\n"
        ),
    )
    .await;
    let (_, job) = run(&server, import("/content/imports/first.csv", "merge")).await;
    assert_eq!(job["state"], "Complete", "{job}");
    upload(
        &server,
        "/content/imports/second.csv",
        format!("assetPath,dc:title\r\n{root}/flower.jpg,Rose\r\n{root}/hopper.jpg,\r\n"),
    )
    .await;
    let (_, job) = run(&server, import("/content/imports/second.csv", "merge")).await;
    assert_eq!(job["state"], "Complete", "{job}");
    let s = |t: &str| Value::String(t.into());
    let meta = stored(&server, root).await;
    assert_eq!(
        meta["/flower.jpg"],
        BTreeMap::from([
            ("dc:title".to_string(), vec![s("Rose")]),
            ("dc:subject".to_string(), vec![s("spring"), s("garden")]),
            ("tiff:ImageWidth".to_string(), vec![Value::Long(128)]),
        ]),
        "merge keeps what the row does not give"
    );
    assert_eq!(
        meta["/hopper.jpg"]["dc:title"],
        vec![s("Hopper")],
        "an empty cell changes nothing"
    );

    upload(
        &server,
        "/content/imports/third.csv",
        format!("assetPath,dc:rights\n{root}/flower.jpg,CC0\n"),
    )
    .await;
    let (_, job) = run(&server, import("/content/imports/third.csv", "replace")).await;
    assert_eq!(job["state"], "Complete", "{job}");
    let meta = stored(&server, root).await;
    assert_eq!(
        meta["/flower.jpg"],
        BTreeMap::from([("dc:rights".to_string(), vec![s("CC0")])]),
        "replace removes what the row does not give"
    );

    // Rows that fail are items of the report, with their row numbers.
    upload(
        &server,
        "/content/imports/bad-rows.csv",
        format!(
            "assetPath,dc:created {{{{ Date }}}},tiff:ImageWidth {{{{ Long }}}}\n\
             {root}/rgb.jpg,2024-05-07T01:32:09Z,640\n\
             {root}/missing.jpg,2024-05-07,\n\
             /content/dam/other/flower.jpg,2024-05-07,\n\
             {root}/keep/iptc.jpg,2024-05-07,\n\
             {root}/hopper.jpg,24/11/2026,\n\
             {root}/hopper.jpg,,\"wide\nand tall\"\n\
             hopper.jpg,,\n\
             {root}/hopper.jpg,2024-05-07\n"
        ),
    )
    .await;
    let (id, job) = run(&server, import("/content/imports/bad-rows.csv", "merge")).await;
    assert_eq!(job["state"], "Complete", "{job}");
    assert_eq!(
        (
            job["counts"]["succeeded"].as_i64(),
            job["counts"]["failed"].as_i64()
        ),
        (Some(1), Some(7)),
        "{job}"
    );
    let rows = report(&server, &id).await;
    let row = |needle: &str| {
        rows.iter()
            .find(|r| r[4].starts_with(needle))
            .unwrap_or_else(|| panic!("no report row {needle:?} in {rows:?}"))
            .clone()
    };
    let expect = |needle: &str, path: &str, code: &str, rest: &str| {
        let r = row(needle);
        assert_eq!(
            (r[0].as_str(), r[2].as_str(), r[3].as_str()),
            (path, "failed", code),
            "{r:?}"
        );
        assert!(r[4].contains(rest), "{r:?}");
    };
    let ok = row("row 2:");
    assert_eq!(
        (ok[0].as_str(), ok[2].as_str()),
        (format!("{root}/rgb.jpg").as_str(), "succeeded")
    );
    expect(
        "row 3:",
        &format!("{root}/missing.jpg"),
        "404",
        "no asset at",
    );
    expect(
        "row 4:",
        "/content/dam/other/flower.jpg",
        "403",
        "outside this job's path",
    );
    expect(
        "row 5:",
        &format!("{root}/keep/iptc.jpg"),
        "403",
        "outside this job's path",
    );
    expect(
        "row 6, column dc:created:",
        &format!("{root}/hopper.jpg"),
        "400",
        "\"24/11/2026\" is not an ISO 8601 date",
    );
    expect(
        "row 7, column tiff:ImageWidth:",
        &format!("{root}/hopper.jpg"),
        "400",
        "is not a whole number",
    );
    expect(
        "row 8 (line 9):",
        "/content/imports/bad-rows.csv",
        "400",
        "assetPath \"hopper.jpg\" is not an absolute asset path",
    );
    expect(
        "row 9 (line 10):",
        &format!("{root}/hopper.jpg"),
        "400",
        "2 fields, but the header has 3",
    );
    let meta = stored(&server, root).await;
    assert_eq!(meta["/rgb.jpg"]["tiff:ImageWidth"], vec![Value::Long(640)]);
    assert_eq!(meta["/hopper.jpg"].get("dc:created"), None);
    assert!(stored(&server, "/content/dam/other").await.is_empty());

    // A bad header fails the job at once, naming line and column.
    upload(
        &server,
        "/content/imports/bad-header.csv",
        format!("assetPath,dc:title,exif:FNumber {{{{ Float }}}}\n{root}/rgb.jpg,a,1\n"),
    )
    .await;
    let (id, job) = run(&server, import("/content/imports/bad-header.csv", "merge")).await;
    assert_eq!(job["state"], "Failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("invalid input")
            && error
                .contains("line 1, column \"exif:FNumber {{ Float }}\": unknown type \"Float\""),
        "{error}"
    );
    assert_eq!(job["counts"]["total"], 0);
    assert!(server.tasks(&id).await.is_empty());
    // So does a CSV that is not there, or not well-formed.
    let (_, job) = run(&server, import("/content/imports/none.csv", "merge")).await;
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("no CSV at /content/imports/none.csv"),
        "{job}"
    );
    upload(
        &server,
        "/content/imports/broken.csv",
        format!("assetPath,dc:title\n{root}/rgb.jpg,ok\n{root}/hopper.jpg,\"open\n"),
    )
    .await;
    let (_, job) = run(&server, import("/content/imports/broken.csv", "merge")).await;
    assert_eq!(job["state"], "Failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("line 3: a quoted field is not closed"),
        "{job}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn export_in_parts_with_chosen_columns() {
    let root = "/content/dam/many";
    let dir = tempfile::tempdir().unwrap();
    let photo = corpus().join("images/hopper.jpg");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    for i in 0..1100 {
        std::fs::copy(&photo, dir.path().join(format!("sub/p{i:04}.jpg"))).unwrap();
    }
    std::fs::copy(&photo, dir.path().join("top.jpg")).unwrap();
    let server = server();
    import_dir(&server, dir.path(), root, 1101);

    let mut csv = String::from("assetPath,wasmq:n {{ Long }},dc:format\n");
    for i in 0..1100 {
        csv.push_str(&format!("{root}/sub/p{i:04}.jpg,{i},image/jpeg\n"));
    }
    upload(&server, "/content/imports/many.csv", csv).await;
    let (_, job) = run(
        &server,
        json!({"type": "metadata-import", "path": root, "params": {"csv": "/content/imports/many.csv", "batchSize": 1000}}),
    )
    .await;
    assert_eq!(job["state"], "Complete", "{job}");
    assert_eq!(job["counts"]["succeeded"], 1100);

    // The target lies inside the exported folder: it is not a row of itself.
    let target = format!("{root}/export.csv");
    let export = json!({"type": "metadata-export", "path": root,
                        "params": {"target": target, "properties": ["wasmq:n", "dc:title"]}});
    for round in 0..2 {
        let (id, job) = run(&server, export.clone()).await;
        assert_eq!(job["state"], "Complete", "round {round}: {job}");
        let tasks = server.tasks(&id).await;
        assert_eq!(tasks.len(), 3, "1,101 assets in parts of 500");
        assert!(
            task(&tasks, "/sub/p0000.jpg")["message"]
                .as_str()
                .unwrap()
                .contains("500 assets")
        );
        let text = download(&server, &target).await;
        let records = damcsv::records(&text).unwrap();
        assert_eq!(
            records[0].1,
            ["assetPath", "wasmq:n {{ Long }}", "dc:title {{ String }}"],
            "the chosen columns, in order"
        );
        assert_eq!(records.len(), 1 + 1101);
        for (i, (_, fields)) in records[1..1101].iter().enumerate() {
            assert_eq!(
                fields,
                &[
                    format!("{root}/sub/p{i:04}.jpg"),
                    i.to_string(),
                    String::new()
                ]
            );
        }
        assert_eq!(
            records[1101].1,
            [format!("{root}/top.jpg"), String::new(), String::new()]
        );
    }

    // Not recursive: only the folder's own assets (the earlier CSV is one of them).
    let (_, job) = run(
        &server,
        json!({"type": "metadata-export", "path": root,
               "params": {"target": "/content/exports/top.csv", "recursive": false}}),
    )
    .await;
    assert_eq!(job["state"], "Complete", "{job}");
    let text = download(&server, "/content/exports/top.csv").await;
    assert_eq!(
        text,
        format!("assetPath\r\n{root}/export.csv\r\n{root}/top.jpg\r\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_params_are_refused_with_400() {
    let server = server();
    let cases = [
        (
            json!({"type": "metadata-import", "path": "/content/dam", "params": {}}),
            "params",
        ),
        (
            json!({"type": "metadata-import", "path": "/content/dam", "params": {"csv": "/a.csv", "mode": "upsert"}}),
            "params.mode",
        ),
        (
            json!({"type": "metadata-import", "path": "/content/dam", "params": {"csv": "/a.csv", "batchSize": 0}}),
            "params.batchSize",
        ),
        (
            json!({"type": "metadata-import", "path": "/content/dam", "params": {"csv": "a.csv"}}),
            "params.csv",
        ),
        (
            json!({"type": "metadata-export", "path": "/content/dam", "params": {}}),
            "params",
        ),
        (
            json!({"type": "metadata-export", "path": "/content/dam", "params": {"target": "/x.csv", "properties": ["dc:title", "a b"]}}),
            "params.properties.1",
        ),
        (
            json!({"type": "metadata-export", "path": "/content/dam", "params": {"target": "/x.csv", "recursive": "yes"}}),
            "params.recursive",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = server.post("/api/v1/jobs", &body).await;
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (400, Some(field)),
            "{body}: {answer}"
        );
    }
    let (_, jobs) = server.get("/api/v1/jobs").await;
    assert_eq!(jobs["jobs"], json!([]), "nothing was created");
}
