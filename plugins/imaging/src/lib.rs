//! Image optimization over bytes: decodes PNG, JPEG, GIF and WebP, optionally shrinks
//! to fit a box, and encodes a lossless recompressed PNG, a JPEG or a lossless WebP.
//!
//! Pure Rust (no C), single-threaded, so that it builds for wasm32-wasip2. PNG
//! output is lossless at the pixel level (see [`png`]); JPEG output is a
//! re-encoding at a given quality, keeping the ICC profile and EXIF data.

pub mod png;

use std::io::Cursor;

use image::codecs::gif::GifDecoder;
use image::codecs::jpeg::JpegDecoder;
use image::codecs::png::PngDecoder;
use image::codecs::webp::{WebPDecoder, WebPEncoder};
use image::imageops::FilterType;
use image::{AnimationDecoder, DynamicImage, ExtendedColorType, ImageDecoder, ImageEncoder};

/// An image file format this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Jpeg,
    Gif,
    WebP,
}

impl Format {
    /// The format of `data`, from its first bytes.
    pub fn detect(data: &[u8]) -> Option<Format> {
        if data.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Format::Png)
        } else if data.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(Format::Jpeg)
        } else if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
            Some(Format::Gif)
        } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
            Some(Format::WebP)
        } else {
            None
        }
    }

    /// `png`, `jpeg`, `gif` or `webp` (also `jpg`) as a format.
    pub fn from_name(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "png" => Some(Format::Png),
            "jpeg" | "jpg" => Some(Format::Jpeg),
            "gif" => Some(Format::Gif),
            "webp" => Some(Format::WebP),
            _ => None,
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpeg => "jpg",
            Format::Gif => "gif",
            Format::WebP => "webp",
        }
    }

    /// The media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Jpeg => "image/jpeg",
            Format::Gif => "image/gif",
            Format::WebP => "image/webp",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Png => "PNG",
            Format::Jpeg => "JPEG",
            Format::Gif => "GIF",
            Format::WebP => "WebP",
        })
    }
}

/// What to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The output format; `None` keeps the input's (a GIF becomes a PNG).
    pub format: Option<Format>,
    /// Shrinks the image (keeping its aspect ratio) to fit this width...
    pub max_width: Option<u32>,
    /// ...and this height. Images are never enlarged.
    pub max_height: Option<u32>,
    /// JPEG quality, 1-100.
    pub jpeg_quality: u8,
    /// Progressive JPEG rather than baseline.
    pub progressive: bool,
    /// How hard the PNG encoder compresses.
    pub png_effort: png::Effort,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: None,
            max_width: None,
            max_height: None,
            jpeg_quality: 85,
            progressive: true,
            png_effort: png::Effort::Default,
        }
    }
}

/// The result of [`optimize`].
#[derive(Debug, Clone)]
pub struct Optimized {
    /// The encoded image.
    pub data: Vec<u8>,
    /// Its format.
    pub format: Format,
    /// The input's format.
    pub input_format: Format,
    /// The input's width and height.
    pub input_size: (u32, u32),
    /// The output's width and height.
    pub size: (u32, u32),
}

/// Why an image could not be optimized.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    #[error("not a PNG, JPEG, GIF or WebP image")]
    UnknownFormat,
    #[error("cannot decode {format}: {reason}")]
    Decode { format: Format, reason: String },
    #[error("animated {0} images are not supported")]
    Animated(Format),
    #[error("{0} is not an output format (use PNG, JPEG or WebP)")]
    UnsupportedOutput(Format),
    #[error("cannot encode {format}: {reason}")]
    Encode { format: Format, reason: String },
}

/// A decoded image with the colour profile and EXIF data of its file.
struct Decoded {
    image: DynamicImage,
    icc: Option<Vec<u8>>,
    exif: Option<Vec<u8>>,
}

/// Decodes `input`, resizes it if asked and encodes it as `options` say.
pub fn optimize(input: &[u8], options: &Options) -> Result<Optimized, ImagingError> {
    let input_format = Format::detect(input).ok_or(ImagingError::UnknownFormat)?;
    let format = match options.format {
        Some(Format::Gif) => return Err(ImagingError::UnsupportedOutput(Format::Gif)),
        Some(format) => format,
        None if input_format == Format::Gif => Format::Png,
        None => input_format,
    };
    let decoded = decode(input, input_format)?;
    let input_size = (decoded.image.width(), decoded.image.height());
    let size = fit_within(input_size, options.max_width, options.max_height);
    let image = if size == input_size {
        decoded.image
    } else {
        decoded
            .image
            .resize_exact(size.0, size.1, FilterType::Lanczos3)
    };
    let data = match format {
        Format::Png => {
            let mut kept = if input_format == Format::Png {
                png::kept_chunks(input)
            } else {
                vec![]
            };
            if let Some(icc) = &decoded.icc
                && !kept.iter().any(|c| &c.kind == b"iCCP")
            {
                kept.push(png::iccp_chunk(icc));
            }
            let has_icc = kept.iter().any(|c| &c.kind == b"iCCP");
            png::encode(&image, &kept, has_icc, options.png_effort)
        }
        Format::Jpeg => encode_jpeg(&image, options, &decoded.icc, &decoded.exif)?,
        _ => encode_webp(&image, &decoded.icc)?,
    };
    Ok(Optimized {
        data,
        format,
        input_format,
        input_size,
        size,
    })
}

/// The largest size with the aspect ratio of `size` that fits the maxima; never larger than `size`.
pub fn fit_within(size: (u32, u32), max_width: Option<u32>, max_height: Option<u32>) -> (u32, u32) {
    let (w, h) = (size.0.max(1) as f64, size.1.max(1) as f64);
    let scale = max_width
        .map_or(1.0, |m| m as f64 / w)
        .min(max_height.map_or(1.0, |m| m as f64 / h));
    if scale >= 1.0 {
        return size;
    }
    let fit = |v: f64, max: Option<u32>| {
        ((v * scale).round() as u32).clamp(1, max.unwrap_or(u32::MAX).max(1))
    };
    (fit(w, max_width), fit(h, max_height))
}

fn decode(input: &[u8], format: Format) -> Result<Decoded, ImagingError> {
    let failed = |e: image::ImageError| ImagingError::Decode {
        format,
        reason: e.to_string(),
    };
    let cursor = Cursor::new(input);
    match format {
        Format::Png => {
            let decoder = PngDecoder::new(cursor).map_err(failed)?;
            if decoder.is_apng().map_err(failed)? {
                return Err(ImagingError::Animated(format));
            }
            from_decoder(decoder).map_err(failed)
        }
        Format::Jpeg => from_decoder(JpegDecoder::new(cursor).map_err(failed)?).map_err(failed),
        Format::WebP => {
            let decoder = WebPDecoder::new(cursor).map_err(failed)?;
            if decoder.has_animation() {
                return Err(ImagingError::Animated(format));
            }
            from_decoder(decoder).map_err(failed)
        }
        Format::Gif => {
            let mut frames = GifDecoder::new(cursor).map_err(failed)?.into_frames();
            let first = frames
                .next()
                .ok_or_else(|| ImagingError::Decode {
                    format,
                    reason: "no image in the file".into(),
                })?
                .map_err(failed)?;
            if matches!(frames.next(), Some(Ok(_))) {
                return Err(ImagingError::Animated(format));
            }
            Ok(Decoded {
                image: DynamicImage::ImageRgba8(first.into_buffer()),
                icc: None,
                exif: None,
            })
        }
    }
}

fn from_decoder(mut decoder: impl ImageDecoder) -> Result<Decoded, image::ImageError> {
    let icc = decoder.icc_profile()?;
    let exif = decoder.exif_metadata()?;
    let image = DynamicImage::from_decoder(decoder)?;
    Ok(Decoded { image, icc, exif })
}

/// 8-bit samples with any alpha composited onto white, as gray or RGB.
fn opaque_samples(image: &DynamicImage) -> (Vec<u8>, bool) {
    let gray = !image.color().has_color();
    if !image.color().has_alpha() {
        return if gray {
            (image.to_luma8().into_raw(), true)
        } else {
            (image.to_rgb8().into_raw(), false)
        };
    }
    let over_white =
        |c: u8, a: u8| ((c as u32 * a as u32 + 255 * (255 - a as u32) + 127) / 255) as u8;
    if gray {
        let samples = image.to_luma_alpha8();
        (
            samples.pixels().map(|p| over_white(p[0], p[1])).collect(),
            true,
        )
    } else {
        let samples = image.to_rgba8();
        let rgb = samples
            .pixels()
            .flat_map(|p| [0, 1, 2].map(|i| over_white(p[i], p[3])))
            .collect();
        (rgb, false)
    }
}

fn encode_jpeg(
    image: &DynamicImage,
    options: &Options,
    icc: &Option<Vec<u8>>,
    exif: &Option<Vec<u8>>,
) -> Result<Vec<u8>, ImagingError> {
    let failed = |reason: String| ImagingError::Encode {
        format: Format::Jpeg,
        reason,
    };
    let (Ok(width), Ok(height)) = (u16::try_from(image.width()), u16::try_from(image.height()))
    else {
        return Err(failed(
            "JPEG images are at most 65535 pixels wide and high".into(),
        ));
    };
    let (samples, gray) = opaque_samples(image);
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, options.jpeg_quality.clamp(1, 100));
    encoder.set_progressive(options.progressive);
    encoder.set_optimized_huffman_tables(true);
    if let Some(exif) = exif {
        let mut segment = b"Exif\0\0".to_vec();
        segment.extend(exif);
        // EXIF that does not fit one segment is left out rather than split.
        if segment.len() <= 65533 {
            encoder
                .add_app_segment(1, segment)
                .map_err(|e| failed(e.to_string()))?;
        }
    }
    if let Some(icc) = icc {
        encoder
            .add_icc_profile(icc)
            .map_err(|e| failed(e.to_string()))?;
    }
    let color = if gray {
        jpeg_encoder::ColorType::Luma
    } else {
        jpeg_encoder::ColorType::Rgb
    };
    encoder
        .encode(&samples, width, height, color)
        .map_err(|e| failed(e.to_string()))?;
    Ok(out)
}

fn encode_webp(image: &DynamicImage, icc: &Option<Vec<u8>>) -> Result<Vec<u8>, ImagingError> {
    let failed = |e: image::ImageError| ImagingError::Encode {
        format: Format::WebP,
        reason: e.to_string(),
    };
    let color = image.color();
    let (samples, kind) = match (color.has_color(), color.has_alpha()) {
        (false, false) => (image.to_luma8().into_raw(), ExtendedColorType::L8),
        (false, true) => (image.to_luma_alpha8().into_raw(), ExtendedColorType::La8),
        (true, false) => (image.to_rgb8().into_raw(), ExtendedColorType::Rgb8),
        (true, true) => (image.to_rgba8().into_raw(), ExtendedColorType::Rgba8),
    };
    let mut out = Vec::new();
    let mut encoder = WebPEncoder::new_lossless(&mut out);
    if let Some(icc) = icc {
        // Only fails for encoders that cannot carry a profile; WebP can.
        let _ = encoder.set_icc_profile(icc.clone());
    }
    encoder
        .write_image(&samples, image.width(), image.height(), kind)
        .map_err(failed)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A file of the image corpus (scripts/corpus-images.sh).
    fn corpus(name: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/corpus/images")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run scripts/corpus-images.sh first",
                path.display()
            )
        })
    }

    fn load(data: &[u8]) -> DynamicImage {
        image::load_from_memory(data).expect("decodes")
    }

    const PNGS: [&str; 5] = [
        "hopper.png",
        "flower_thumbnail.png",
        "uncompressed_rgb.png",
        "transparent.png",
        "radial_gradients.png",
    ];

    #[test]
    fn detects_formats_by_their_first_bytes() {
        assert_eq!(Format::detect(&corpus("hopper.png")), Some(Format::Png));
        assert_eq!(Format::detect(&corpus("hopper.jpg")), Some(Format::Jpeg));
        assert_eq!(Format::detect(&corpus("hopper.gif")), Some(Format::Gif));
        assert_eq!(Format::detect(&corpus("hopper.webp")), Some(Format::WebP));
        assert_eq!(Format::detect(b"%PDF-1.4"), None);
    }

    #[test]
    fn png_recompression_is_lossless_on_the_corpus() {
        for name in PNGS {
            let input = corpus(name);
            let out = optimize(&input, &Options::default()).expect(name);
            assert_eq!(out.format, Format::Png);
            assert_eq!(
                load(&out.data).to_rgba16(),
                load(&input).to_rgba16(),
                "{name} changed pixels"
            );
        }
    }

    #[test]
    fn an_uncompressed_png_shrinks() {
        let input = corpus("uncompressed_rgb.png");
        let out = optimize(&input, &Options::default()).unwrap();
        // oxipng -o2 gets it to 128012 bytes (87%).
        assert!(
            out.data.len() * 10 < input.len() * 9,
            "{} -> {}",
            input.len(),
            out.data.len()
        );
    }

    #[test]
    fn png_text_and_colour_chunks_survive() {
        let input = corpus("hopper.png");
        let kinds = |data: &[u8]| -> Vec<[u8; 4]> {
            png::kept_chunks(data).into_iter().map(|c| c.kind).collect()
        };
        let out = optimize(&input, &Options::default()).unwrap();
        assert_eq!(kinds(&out.data), kinds(&input));
    }

    #[test]
    fn jpeg_is_re_encoded_progressive_with_its_exif() {
        let input = corpus("exif-72dpi-int.jpg");
        let out = optimize(&input, &Options::default()).unwrap();
        assert_eq!(out.format, Format::Jpeg);
        assert_eq!(out.size, out.input_size);
        // SOF2 is the start of a progressive frame.
        assert!(out.data.windows(2).any(|w| w == [0xff, 0xc2]));
        assert!(out.data.windows(6).any(|w| w == b"Exif\0\0"));
        let (a, b) = (load(&input).to_rgb8(), load(&out.data).to_rgb8());
        assert_eq!(a.dimensions(), b.dimensions());
        let diff: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y) as u64)
            .sum();
        assert!(
            diff / (a.as_raw().len() as u64) < 8,
            "mean error {}",
            diff / a.as_raw().len() as u64
        );

        let baseline = Options {
            progressive: false,
            jpeg_quality: 60,
            ..Options::default()
        };
        let low = optimize(&input, &baseline).unwrap();
        assert!(!low.data.windows(2).any(|w| w == [0xff, 0xc2]));
        assert!(low.data.len() < out.data.len());
    }

    #[test]
    fn gray_jpeg_stays_gray() {
        let out = optimize(&corpus("hopper_gray.jpg"), &Options::default()).unwrap();
        assert!(!load(&out.data).color().has_color());
    }

    #[test]
    fn resizing_fits_the_box_and_keeps_the_aspect_ratio() {
        let input = corpus("flower2.jpg");
        let options = Options {
            max_width: Some(100),
            max_height: Some(100),
            ..Options::default()
        };
        let out = optimize(&input, &options).unwrap();
        let (w, h) = out.input_size;
        assert_eq!(out.size, fit_within((w, h), Some(100), Some(100)));
        let back = load(&out.data);
        assert_eq!((back.width(), back.height()), out.size);
        assert!(out.size.0 <= 100 && out.size.1 <= 100 && out.size.0.max(out.size.1) == 100);
    }

    #[test]
    fn fit_within_never_enlarges() {
        assert_eq!(fit_within((400, 200), Some(100), None), (100, 50));
        assert_eq!(fit_within((400, 200), None, Some(100)), (200, 100));
        assert_eq!(fit_within((400, 200), Some(100), Some(10)), (20, 10));
        assert_eq!(fit_within((40, 20), Some(100), Some(100)), (40, 20));
        assert_eq!(fit_within((4000, 1), Some(10), None), (10, 1));
    }

    #[test]
    fn gif_becomes_a_lossless_png() {
        let input = corpus("hopper.gif");
        let out = optimize(&input, &Options::default()).unwrap();
        assert_eq!((out.input_format, out.format), (Format::Gif, Format::Png));
        assert_eq!(load(&out.data).to_rgba8(), load(&input).to_rgba8());
        assert!(out.data.len() < input.len());
        let gif = Options {
            format: Some(Format::Gif),
            ..Options::default()
        };
        assert!(matches!(
            optimize(&input, &gif),
            Err(ImagingError::UnsupportedOutput(Format::Gif))
        ));
    }

    #[test]
    fn webp_output_is_lossless() {
        let webp = Options {
            format: Some(Format::WebP),
            ..Options::default()
        };
        for name in ["hopper.png", "transparent.png", "flower.webp"] {
            let input = corpus(name);
            let out = optimize(&input, &webp).unwrap();
            assert_eq!(Format::detect(&out.data), Some(Format::WebP));
            assert_eq!(
                load(&out.data).to_rgba8(),
                load(&input).to_rgba8(),
                "{name}"
            );
        }
    }

    #[test]
    fn damaged_files_fail_with_the_decoders_reason() {
        for name in ["broken.png", "truncated_image.png"] {
            match optimize(&corpus(name), &Options::default()) {
                Err(ImagingError::Decode { format, reason }) => {
                    assert_eq!(format, Format::Png);
                    assert!(!reason.is_empty());
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(matches!(
            optimize(b"plain text", &Options::default()),
            Err(ImagingError::UnknownFormat)
        ));
    }
}
