//! The `pdf-rip` job type: every PDF under the job's path becomes, page by page,
//! a PNG image and a text rendition, plus its page count and sizes as metadata.
//!
//! `plan` opens each PDF (content type `application/pdf` or a `.pdf` name) to
//! count its pages and plans one task per page. A PDF that does not parse is
//! planned as one task for the whole file, whose run fails (422) with the
//! parser's reason, so it shows as a failed item in the report.
//!
//! The task for page N writes the renditions `page-N.png` (`image/png`, at the
//! param `dpi`, lowered if the image would exceed `maxPixels`) and `page-N.txt`
//! (`text/plain; charset=utf-8`). The task for page 1 also sets, merging with
//! the asset's other metadata:
//! - `pdf:pageCount` (Long): the number of pages;
//! - `pdf:pageSizes` (Text, one value per page, in order): `WIDTHxHEIGHT` in
//!   whole points (1/72 inch) as displayed, crop box and rotation applied, e.g. `612x792`.

use pdfrip_core::{DEFAULT_MAX_PIXELS, Document, MAX_DPI, MIN_DPI};
use serde::{Deserialize, Serialize};
use wasmq_sdk::{
    Capabilities, Descriptor, Error, Job, JobType, MetaValue, Property, Task, TaskOutcome, assets,
    metadata, renditions,
};

/// The largest `maxPixels` accepted: 40 megapixels, about 160 MB of RGBA.
const MAX_MAX_PIXELS: u64 = 40_000_000;

struct PdfRip;

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Params {
    #[serde(default = "default_dpi")]
    dpi: f32,
    #[serde(default = "default_max_pixels")]
    max_pixels: u64,
}

fn default_dpi() -> f32 {
    72.0
}
fn default_max_pixels() -> u64 {
    DEFAULT_MAX_PIXELS
}

impl Params {
    fn parse(job: &Job) -> Result<Params, Error> {
        let params: Params = job.params()?;
        if !(MIN_DPI..=MAX_DPI).contains(&params.dpi) {
            return Err(Error::invalid_input(format!(
                "params.dpi: {} is outside {MIN_DPI}..={MAX_DPI}",
                params.dpi
            )));
        }
        if !(1..=MAX_MAX_PIXELS).contains(&params.max_pixels) {
            return Err(Error::invalid_input(format!(
                "params.maxPixels: {} is outside 1..={MAX_MAX_PIXELS}",
                params.max_pixels
            )));
        }
        Ok(params)
    }
}

/// A task's input: the page (from 1), or none for a PDF that did not parse in `plan`.
#[derive(Serialize, Deserialize)]
struct Input {
    page: Option<usize>,
}

fn task(path: &str, page: Option<usize>) -> Task {
    Task {
        path: path.into(),
        input: serde_json::to_vec(&Input { page }).expect("serializable"),
    }
}

fn is_pdf(asset: &wasmq_sdk::AssetStat) -> bool {
    asset.content_type.eq_ignore_ascii_case("application/pdf")
        || asset
            .path
            .rsplit_once('.')
            .is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("pdf"))
}

fn unreadable(error: pdfrip_core::Error) -> Error {
    Error::permanent(422, error.to_string())
}

impl JobType for PdfRip {
    fn describe() -> Descriptor {
        Descriptor::new(
            "pdf-rip",
            env!("CARGO_PKG_VERSION"),
            &["pdf-rip"],
            Capabilities::READ | Capabilities::WRITE | Capabilities::METADATA,
        )
        .params_schema(serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "dpi": {
                    "type": "number", "minimum": MIN_DPI, "maximum": MAX_DPI, "default": 72,
                    "description": "Resolution of the page images: pixels per inch (72 gives one pixel per point)"
                },
                "maxPixels": {
                    "type": "integer", "minimum": 1, "maximum": MAX_MAX_PIXELS,
                    "default": DEFAULT_MAX_PIXELS,
                    "description": "Most pixels in one page image; a larger page is rendered at a lower DPI"
                }
            }
        }))
    }

    fn plan(job: &Job) -> Result<(), Error> {
        Params::parse(job)?;
        let (mut pdfs, mut pages, mut unreadable) = (0, 0, 0);
        let mut tasks = Vec::new();
        job.for_each_asset(&job.info.path, |asset| {
            if !is_pdf(&asset) {
                return Ok(());
            }
            pdfs += 1;
            match Document::parse(&assets::read(&asset.path)?) {
                Ok(doc) => {
                    let count = doc.page_count();
                    pages += count;
                    tasks.extend((1..=count).map(|page| task(&asset.path, Some(page))));
                }
                Err(error) => {
                    unreadable += 1;
                    job.log(&format!("{}: {error}", asset.path));
                    tasks.push(task(&asset.path, None));
                }
            }
            // Stream to the host rather than hold a huge job's tasks.
            if tasks.len() >= 500 {
                job.add_tasks(std::mem::take(&mut tasks))?;
            }
            Ok(())
        })?;
        job.add_tasks(tasks)?;
        job.log(&format!(
            "planned {pages} pages of {pdfs} PDFs under {} ({unreadable} unreadable)",
            job.info.path
        ));
        Ok(())
    }

    fn run_task(job: &Job, task: Task) -> Result<TaskOutcome, Error> {
        let params = Params::parse(job)?;
        let input: Input = serde_json::from_slice(&task.input)
            .map_err(|e| Error::permanent(400, format!("bad task input: {e}")))?;
        let path = &task.path;
        let Some(stat) = assets::stat(path)? else {
            return Err(Error::permanent(404, "no such asset"));
        };
        let doc = Document::parse(&assets::read(path)?).map_err(unreadable)?;
        let Some(page) = input.page else {
            return Err(Error::permanent(
                409,
                "the PDF was unreadable when the job was planned and has changed since: submit again",
            ));
        };
        let image = doc
            .render_png(page, params.dpi, params.max_pixels)
            .map_err(unreadable)?;
        let text = doc.text(page).map_err(unreadable)?;
        renditions::write(path, &format!("page-{page}.png"), &image.png, "image/png")?;
        renditions::write(
            path,
            &format!("page-{page}.txt"),
            text.as_bytes(),
            "text/plain; charset=utf-8",
        )?;
        if page == 1 {
            let sizes = doc.page_sizes();
            let properties = [
                Property {
                    name: "pdf:pageCount".into(),
                    values: vec![MetaValue::Long(sizes.len() as i64)],
                },
                Property {
                    name: "pdf:pageSizes".into(),
                    values: sizes.iter().map(|s| MetaValue::Text(s.label())).collect(),
                },
            ];
            metadata::set(path, &properties, false)?;
        }
        let lowered = if image.dpi < params.dpi {
            format!(" (lowered from {} to fit maxPixels)", params.dpi)
        } else {
            String::new()
        };
        Ok(TaskOutcome::ok(format!(
            "page {page} of {}: {}x{} px at {:.1} dpi{lowered}, {} characters of text",
            doc.page_count(),
            image.width,
            image.height,
            image.dpi,
            text.chars().count()
        ))
        .with_etag(stat.etag))
    }
}

wasmq_sdk::export!(PdfRip);
