//! The `image-optimize` job type: recompresses every PNG, JPEG, GIF and WebP image
//! under the job's path (optionally resized or converted) into a rendition, or in place when smaller.
//!
//! One task per image. By default the result is written as the rendition
//! `optimized.<ext>` (or the name in `rendition`); with `replace: true` it
//! replaces the asset itself, but only when it is smaller and of the same
//! format. The report row says `before -> after bytes (change%)`: code 200 when
//! something was written, 204 when the image was already optimal. A damaged
//! image fails its item (422) with the decoder's reason.
//!
//! Replacing is idempotent: the new etag is recorded in the asset's metadata
//! property `wasmq:optimizedEtag`, and an asset whose etag is still that one
//! is not encoded again (a JPEG would otherwise lose a little more each time).

use imaging::{Format, ImagingError, Options, png::Effort};
use serde::Deserialize;
use wasmq_sdk::{
    Capabilities, Descriptor, Error, Job, JobType, MetaValue, Property, Task, TaskOutcome, assets,
    metadata, renditions,
};

/// The metadata property that records the etag an in-place optimization produced.
const MARKER: &str = "wasmq:optimizedEtag";

/// Extensions of the files this job type plans tasks for.
const EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "gif", "webp"];

struct ImageOptimize;

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Params {
    #[serde(default = "auto")]
    format: String,
    max_width: Option<u32>,
    max_height: Option<u32>,
    #[serde(default = "default_quality")]
    quality: u8,
    #[serde(default = "yes")]
    progressive: bool,
    #[serde(default = "default_compression")]
    png_compression: String,
    #[serde(default)]
    replace: bool,
    rendition: Option<String>,
}

fn auto() -> String {
    "auto".into()
}
fn default_quality() -> u8 {
    85
}
fn yes() -> bool {
    true
}
fn default_compression() -> String {
    "default".into()
}

impl Params {
    fn parse(job: &Job) -> Result<(Params, Options), Error> {
        let params: Params = job.params()?;
        if params.replace && params.rendition.is_some() {
            return Err(Error::invalid_input(
                "params.rendition: give a rendition name or replace, not both",
            ));
        }
        if params.replace && params.format != "auto" {
            return Err(Error::invalid_input(
                "params.format: replace keeps each image's format, so format must be auto",
            ));
        }
        let format = match params.format.as_str() {
            "auto" => None,
            name => Some(Format::from_name(name).ok_or_else(|| {
                Error::invalid_input(format!("params.format: unknown format {name:?}"))
            })?),
        };
        let options = Options {
            format,
            max_width: params.max_width,
            max_height: params.max_height,
            jpeg_quality: params.quality,
            progressive: params.progressive,
            png_effort: if params.png_compression == "max" {
                Effort::Max
            } else {
                Effort::Default
            },
        };
        Ok((params, options))
    }
}

fn is_image(path: &str) -> bool {
    path.rsplit_once('.')
        .is_some_and(|(_, ext)| EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// `123456 -> 98765 bytes (-20.0%)`.
fn change(before: usize, after: usize) -> String {
    let percent = (after as f64 - before as f64) * 100.0 / (before.max(1) as f64);
    format!("{before} -> {after} bytes ({percent:+.1}%)")
}

fn outcome(code: u16, message: String, etag: String) -> TaskOutcome {
    TaskOutcome {
        code,
        message,
        etag: Some(etag),
    }
}

fn failure(error: ImagingError) -> Error {
    match error {
        ImagingError::UnknownFormat | ImagingError::Decode { .. } => {
            Error::permanent(422, error.to_string())
        }
        ImagingError::Animated(_) | ImagingError::UnsupportedOutput(_) => {
            Error::permanent(415, error.to_string())
        }
        ImagingError::Encode { .. } => Error::permanent(500, error.to_string()),
    }
}

impl JobType for ImageOptimize {
    fn describe() -> Descriptor {
        Descriptor::new(
            "image-optimize",
            env!("CARGO_PKG_VERSION"),
            &["image-optimize"],
            Capabilities::READ | Capabilities::WRITE | Capabilities::METADATA,
        )
        .params_schema(serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "format": {
                    "enum": ["auto", "png", "jpeg", "webp"],
                    "default": "auto",
                    "description": "Output format; auto keeps the image's own (a GIF becomes a PNG). WebP output is lossless"
                },
                "maxWidth": {
                    "type": "integer", "minimum": 1, "maximum": 65535,
                    "description": "Shrink to fit this width, keeping the aspect ratio (never enlarges)"
                },
                "maxHeight": {
                    "type": "integer", "minimum": 1, "maximum": 65535,
                    "description": "Shrink to fit this height, keeping the aspect ratio (never enlarges)"
                },
                "quality": {
                    "type": "integer", "minimum": 1, "maximum": 100, "default": 85,
                    "description": "JPEG quality"
                },
                "progressive": {
                    "type": "boolean", "default": true,
                    "description": "Progressive JPEG rather than baseline"
                },
                "pngCompression": {
                    "enum": ["default", "max"], "default": "default",
                    "description": "max uses Zopfli: a few percent smaller, tens of times slower"
                },
                "replace": {
                    "type": "boolean", "default": false,
                    "description": "Replace the asset itself, only when the result is smaller (format must be auto)"
                },
                "rendition": {
                    "type": "string",
                    "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$",
                    "description": "Name of the rendition written [default: optimized.<ext>]"
                }
            }
        }))
    }

    fn plan(job: &Job) -> Result<(), Error> {
        Params::parse(job)?;
        let planned = job
            .plan_each_asset(|asset| is_image(&asset.path).then(|| Task::for_path(&asset.path)))?;
        job.log(&format!("planned {planned} images under {}", job.info.path));
        Ok(())
    }

    fn run_task(job: &Job, task: Task) -> Result<TaskOutcome, Error> {
        let (params, options) = Params::parse(job)?;
        let Some(stat) = assets::stat(&task.path)? else {
            return Err(Error::permanent(404, "no such asset"));
        };
        if params.replace && optimized_etag(&task.path)?.as_deref() == Some(stat.etag.as_str()) {
            return Ok(outcome(
                204,
                "already optimized by an earlier run".into(),
                stat.etag,
            ));
        }
        let data = assets::read(&task.path)?;
        let out = match imaging::optimize(&data, &options) {
            Ok(out) => out,
            Err(ImagingError::Animated(format)) => {
                return Ok(outcome(
                    204,
                    format!("animated {format} left as it is"),
                    stat.etag,
                ));
            }
            Err(e) => return Err(failure(e)),
        };
        let mut summary = change(data.len(), out.data.len());
        if out.size != out.input_size {
            summary += &format!(
                "; {}x{} -> {}x{}",
                out.input_size.0, out.input_size.1, out.size.0, out.size.1
            );
        }
        let smaller = out.data.len() < data.len();
        if params.replace {
            if out.format != out.input_format {
                return Ok(outcome(
                    204,
                    format!(
                        "{} images are not replaced in place ({summary} as {})",
                        out.input_format, out.format
                    ),
                    stat.etag,
                ));
            }
            if !smaller {
                return Ok(outcome(
                    204,
                    format!("already optimal: {summary}"),
                    stat.etag,
                ));
            }
            let written = assets::write(&task.path, &out.data, out.format.content_type())?;
            metadata::set(
                &task.path,
                &[Property {
                    name: MARKER.into(),
                    values: vec![MetaValue::Text(written.etag.clone())],
                }],
                false,
            )?;
            return Ok(outcome(200, format!("{summary}, replaced"), written.etag));
        }
        // A conversion or a resize was asked for: its rendition is written
        // whatever its size. Otherwise only a smaller copy is worth keeping.
        let transformed = out.format != out.input_format || out.size != out.input_size;
        if !smaller && !transformed {
            return Ok(outcome(
                204,
                format!("already optimal: {summary}"),
                stat.etag,
            ));
        }
        let name = params
            .rendition
            .unwrap_or_else(|| format!("optimized.{}", out.format.extension()));
        renditions::write(&task.path, &name, &out.data, out.format.content_type())?;
        Ok(outcome(
            200,
            format!("{summary}, rendition {name}"),
            stat.etag,
        ))
    }
}

/// The etag recorded by the last in-place optimization of `path`, if any.
fn optimized_etag(path: &str) -> Result<Option<String>, Error> {
    Ok(metadata::get(path)?
        .into_iter()
        .find(|p| p.name == MARKER)
        .and_then(|p| match p.values.into_iter().next() {
            Some(MetaValue::Text(etag)) => Some(etag),
            _ => None,
        }))
}

wasmq_sdk::export!(ImageOptimize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_is_signed_with_one_decimal() {
        assert_eq!(change(123456, 98765), "123456 -> 98765 bytes (-20.0%)");
        assert_eq!(change(100, 101), "100 -> 101 bytes (+1.0%)");
        assert_eq!(change(0, 5), "0 -> 5 bytes (+500.0%)");
    }

    #[test]
    fn plans_images_by_extension() {
        assert!(is_image("/content/a/photo.JPG"));
        assert!(is_image("/content/a/b.webp"));
        assert!(!is_image("/content/a/notes.txt"));
        assert!(!is_image("/content/a/png"));
    }
}
