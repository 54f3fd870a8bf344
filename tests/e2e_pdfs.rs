//! The pdf-rip job type end to end: a real server and the component built from plugins/,
//! over real PDFs (scripts/corpus-pdfs.sh): page images and text as renditions, metadata, damaged files, bad params.

use std::path::PathBuf;

use serde_json::{Value, json};
use wasmq_e2e::{Options, Server};

const ROOT: &str = "/content/dam/pdfs";

/// A PDF of the corpus: its pages' sizes in points, and words on some of its pages.
struct Pdf {
    name: &'static str,
    sizes: &'static [(f64, f64)],
    words: &'static [(usize, &'static str)],
}

const A4_LATEX: (f64, f64) = (595.2756, 841.8898);
const A4_OFFICE: (f64, f64) = (595.3039, 841.8898);

const PDFS: &[Pdf] = &[
    Pdf {
        name: "crazyones.pdf",
        sizes: &[(612.0, 792.0)],
        words: &[
            (1, "The Crazy Ones"),
            (1, "The round pegs in the square holes."),
        ],
    },
    Pdf {
        name: "jpeg.pdf",
        sizes: &[(595.0, 842.0)],
        words: &[(1, "A PDF with a JPEG image.")],
    },
    Pdf {
        name: "imagemagick-images.pdf",
        sizes: &[(3.84, 3.84); 6],
        words: &[(1, "Background"), (6, "Background")],
    },
    Pdf {
        name: "pdflatex-outline.pdf",
        sizes: &[A4_LATEX; 4],
        words: &[
            (1, "Contents"),
            (2, "Hello, here is some text without a meaning."),
            (3, "written and an impression of the look."),
        ],
    },
    Pdf {
        name: "libreoffice-form.pdf",
        sizes: &[A4_OFFICE],
        words: &[(1, "Example for a Form"), (1, "Nationality:")],
    },
    Pdf {
        // A portrait media box shown in landscape (/Rotate 90).
        name: "AutoCad_Simple.pdf",
        sizes: &[(842.0, 595.0)],
        words: &[(1, "EXAMPLE")],
    },
    Pdf {
        name: "multilang.pdf",
        sizes: &[A4_OFFICE],
        words: &[
            (1, "Hello World"),
            (1, "Привет, мир"),
            (1, "こんにちは世界"),
        ],
    },
    Pdf {
        // Scanned pages with invisible OCR text.
        name: "Seige_of_Vicksburg_Sample_OCR.pdf",
        sizes: &[(432.0, 648.0); 6],
        words: &[
            (1, "Johnston is coming with fifty"),
            (2, "leaving a hole big enough to bury a horse."),
        ],
    },
];

/// The corpus of real PDFs.
fn corpus() -> PathBuf {
    wasmq_e2e::corpus("pdfs", "crazyones.pdf")
}

/// The corpus plus a PDF cut in half, in a fresh directory to import.
fn import_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(corpus()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let whole = std::fs::read(corpus().join("crazyones.pdf")).unwrap();
    std::fs::write(dir.path().join("truncated.pdf"), &whole[..whole.len() / 2]).unwrap();
    dir
}

/// Width and height from a PNG's signature and IHDR chunk.
fn png_size(data: &[u8]) -> (u32, u32) {
    assert!(
        data.len() > 33 && data.starts_with(b"\x89PNG\r\n\x1a\n") && &data[12..16] == b"IHDR",
        "not a PNG: {:?}",
        &data[..data.len().min(16)]
    );
    let be = |at: usize| u32::from_be_bytes(data[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

fn pixels(points: f64, dpi: f64) -> u32 {
    (points * dpi / 72.0).round() as u32
}

async fn run(server: &Server, params: Value) -> (Value, Vec<Value>) {
    let id = server
        .submit(&json!({"type": "pdf-rip", "path": ROOT, "params": params}))
        .await;
    let job = server.wait_done(&id).await;
    let tasks = server.tasks(&id).await;
    (job, tasks)
}

fn tasks_of<'a>(tasks: &'a [Value], name: &str) -> Vec<&'a Value> {
    let path = format!("{ROOT}/{name}");
    tasks
        .iter()
        .filter(|t| t["path"] == path.as_str())
        .collect()
}

fn server() -> Server {
    Server::start(Options {
        plugins: vec!["wasmq_pdf_rip"],
        workers: Some(2),
        ..Options::default()
    })
}

/// Properties `pdf:*` of the asset at `path`, as (name, kind, value) rows in order.
async fn pdf_metadata(server: &Server, path: &str) -> Vec<(String, String, String)> {
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        server.data_dir().join("wasmq.db").display()
    ))
    .await
    .unwrap();
    sqlx::query_as(
        "SELECT name, kind, value FROM metadata WHERE tenant = 'default' AND path = ? AND name LIKE 'pdf:%' ORDER BY name, idx",
    )
    .bind(path)
    .fetch_all(&db)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_become_images_text_and_metadata() {
    let server = server();
    let src = import_dir();
    server.import(src.path(), ROOT);
    let dpi = 96.0;
    let (job, tasks) = run(&server, json!({"dpi": dpi})).await;
    assert_eq!(job["state"], "Complete", "{job}");

    // One task per page, and one for each unreadable PDF; other files are left alone.
    let pages: usize = PDFS.iter().map(|p| p.sizes.len()).sum();
    assert_eq!(tasks.len(), pages + 2, "{tasks:#?}");
    assert!(tasks_of(&tasks, "crazyones.txt").is_empty());

    for pdf in PDFS {
        let path = format!("{ROOT}/{}", pdf.name);
        let mine = tasks_of(&tasks, pdf.name);
        assert_eq!(mine.len(), pdf.sizes.len(), "{}", pdf.name);
        for t in &mine {
            assert_eq!(
                (&t["state"], &t["code"]),
                (&json!("succeeded"), &json!(200)),
                "{t}"
            );
        }
        let (status, list) = server.get(&format!("/api/v1/renditions{path}")).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(
            list.as_array().unwrap().len(),
            2 * pdf.sizes.len(),
            "{list}"
        );
        for (i, &(width, height)) in pdf.sizes.iter().enumerate() {
            let page = i + 1;
            let png = format!("page-{page}.png");
            let listed = list
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == png.as_str());
            assert_eq!(listed.unwrap()["contentType"], "image/png", "{list}");
            let (status, data) = server.download(&path, Some(&png)).await;
            assert_eq!(status, 200, "{path} {png}");
            assert_eq!(
                png_size(&data),
                (pixels(width, dpi), pixels(height, dpi)),
                "{path} {png}"
            );
            let message = format!(
                "page {page} of {}: {}x{} px at 96.0 dpi, ",
                pdf.sizes.len(),
                pixels(width, dpi),
                pixels(height, dpi)
            );
            assert!(
                mine.iter()
                    .any(|t| t["message"].as_str().unwrap().starts_with(&message)),
                "{message} in {mine:#?}"
            );
        }
        for &(page, words) in pdf.words {
            let (status, text) = server
                .download(&path, Some(&format!("page-{page}.txt")))
                .await;
            assert_eq!(status, 200);
            let text = String::from_utf8(text).unwrap();
            assert!(
                text.contains(words),
                "{path} page {page}: {words:?} not in {text:?}"
            );
        }

        let mut expected = vec![(
            "pdf:pageCount".to_string(),
            "long".to_string(),
            pdf.sizes.len().to_string(),
        )];
        expected.extend(pdf.sizes.iter().map(|(w, h)| {
            (
                "pdf:pageSizes".to_string(),
                "text".to_string(),
                format!("{}x{}", w.round(), h.round()),
            )
        }));
        assert_eq!(pdf_metadata(&server, &path).await, expected, "{path}");
    }
    // The text of crazyones is, word for word, the text pypdf ships for it.
    let (_, text) = server
        .download(&format!("{ROOT}/crazyones.pdf"), Some("page-1.txt"))
        .await;
    let shipped = std::fs::read_to_string(corpus().join("crazyones.txt")).unwrap();
    assert_eq!(
        String::from_utf8(text)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        shipped.split_whitespace().collect::<Vec<_>>()
    );

    // Unreadable PDFs fail their one item with the parser's reason; no renditions, no metadata.
    for (name, reason) in [
        (
            "encrypted-file.pdf",
            "unreadable PDF: encrypted with a password",
        ),
        (
            "truncated.pdf",
            "unreadable PDF: no readable cross-reference table, trailer or page tree (not a PDF, or damaged)",
        ),
    ] {
        let path = format!("{ROOT}/{name}");
        let mine = tasks_of(&tasks, name);
        assert_eq!(mine.len(), 1, "{mine:?}");
        assert_eq!(mine[0]["state"], "failed", "{:?}", mine[0]);
        assert_eq!(mine[0]["code"], 422, "{:?}", mine[0]);
        assert_eq!(mine[0]["message"], reason, "{:?}", mine[0]);
        assert_eq!(
            server.get(&format!("/api/v1/renditions{path}")).await.1,
            json!([])
        );
        assert!(pdf_metadata(&server, &path).await.is_empty());
    }
    let id = job["id"].as_str().unwrap();
    let report = server.report(id).await;
    let row = report
        .lines()
        .find(|l| l.contains("/encrypted-file.pdf"))
        .unwrap_or_else(|| panic!("no encrypted-file.pdf row in {report}"));
    assert!(
        row.contains("422") && row.contains("encrypted with a password"),
        "{row}"
    );

    // Again with the default DPI (72): the same renditions are replaced, one pixel per point.
    let (job, tasks) = run(&server, json!({})).await;
    assert_eq!(job["state"], "Complete", "{job}");
    assert_eq!(tasks.len(), pages + 2);
    for (name, size) in [("jpeg.pdf", (595, 842)), ("AutoCad_Simple.pdf", (842, 595))] {
        let path = format!("{ROOT}/{name}");
        let (_, data) = server.download(&path, Some("page-1.png")).await;
        assert_eq!(png_size(&data), size, "{name}");
        let (_, list) = server.get(&format!("/api/v1/renditions{path}")).await;
        assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_page_is_rendered_within_max_pixels() {
    let server = server();
    let src = tempfile::tempdir().unwrap();
    std::fs::copy(corpus().join("jpeg.pdf"), src.path().join("jpeg.pdf")).unwrap();
    server.import(src.path(), ROOT);
    let (job, tasks) = run(&server, json!({"dpi": 600, "maxPixels": 1_000_000})).await;
    assert_eq!(job["state"], "Complete", "{job}");
    assert_eq!(tasks.len(), 1);
    let message = tasks[0]["message"].as_str().unwrap();
    assert!(
        message.contains("(lowered from 600 to fit maxPixels)"),
        "{message}"
    );
    let (_, data) = server
        .download(&format!("{ROOT}/jpeg.pdf"), Some("page-1.png"))
        .await;
    let (width, height) = png_size(&data);
    assert!(
        u64::from(width) * u64::from(height) <= 1_000_000,
        "{width}x{height}"
    );
    assert!(width > 595, "{width}x{height}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_params_are_refused() {
    let server = server();
    server.import(&corpus(), ROOT);
    for (params, field) in [
        (json!({"dpi": 17}), "params.dpi"),
        (json!({"dpi": 601}), "params.dpi"),
        (json!({"dpi": "high"}), "params.dpi"),
        (json!({"maxPixels": 0}), "params.maxPixels"),
        (json!({"maxPixels": 1.5}), "params.maxPixels"),
        (json!({"resolution": 300}), "params"),
    ] {
        let (status, answer) = server
            .post(
                "/api/v1/jobs",
                &json!({"type": "pdf-rip", "path": ROOT, "params": params}),
            )
            .await;
        assert_eq!(status, 400, "{params}: {answer}");
        let named = answer["error"]["field"].as_str().unwrap_or_default();
        assert!(named.starts_with(field), "{params}: {answer}");
    }
}
