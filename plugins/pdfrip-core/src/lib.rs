//! PDF pages to images and text, pure and free of I/O: parsing a PDF, its page
//! count and sizes, rendering one page to PNG at a DPI, extracting one page's text.
//!
//! Rendering and text both go through `hayro` (pure Rust, builds for
//! wasm32-wasip2): pages are rasterized by `hayro` itself, and text is read by
//! interpreting the page with a device that collects glyphs and their Unicode
//! values, laid out in content order with line breaks where the baseline
//! changes and spaces where glyphs leave a gap. Pages are numbered from 1.

use hayro::hayro_interpret::font::GlyphRun;
use hayro::hayro_interpret::hayro_syntax::{LoadPdfError, Pdf};
use hayro::hayro_interpret::util::TransformExt;
use hayro::hayro_interpret::{
    BlendMode, ClipPath, Context, Device, DrawMode, DrawProps, Image, ImageDrawProps,
    InterpreterCache, InterpreterSettings, SoftMask, interpret_page,
};
use hayro::kurbo::{Affine, BezPath, Point, Rect};
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::vello_cpu::{Pixmap, RasterizerSettings, RenderContext, Resources, TargetInit};
use hayro::{RenderCache, RenderSettings, render_into};

/// The lowest DPI accepted for rendering.
pub const MIN_DPI: f32 = 18.0;
/// The highest DPI accepted for rendering.
pub const MAX_DPI: f32 = 600.0;
/// Pixels per page when the caller sets no bound: 10 megapixels, about
/// 40 MB of RGBA while rendering (Letter at 300 DPI fits).
pub const DEFAULT_MAX_PIXELS: u64 = 10_000_000;
/// The longest side of a rendered page in pixels (the rasterizer's limit).
pub const MAX_SIDE: u32 = u16::MAX as u32;
/// PDF user space units (points) per inch.
const POINTS_PER_INCH: f32 = 72.0;

/// What can go wrong with a PDF or a request about it.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    /// The data is not a PDF this parser can read; the reason says why.
    #[error("unreadable PDF: {0}")]
    Parse(String),
    /// The page number is 0 or past the last page.
    #[error("no page {page}: the PDF has {count} page(s)")]
    NoSuchPage { page: usize, count: usize },
    /// The DPI is outside [`MIN_DPI`]..=[`MAX_DPI`] or not a number.
    #[error("dpi {0} is outside {MIN_DPI}..={MAX_DPI}")]
    BadDpi(f32),
    /// The pixel bound is too small to render even one pixel per side.
    #[error("maxPixels {0} is too small")]
    BadMaxPixels(u64),
    /// The rendered page could not be encoded as PNG.
    #[error("PNG encoding failed: {0}")]
    Png(String),
}

/// A page's size in points (1/72 inch), as displayed: crop box, rotation applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageSize {
    pub width: f32,
    pub height: f32,
}

impl PageSize {
    /// `612x792`: width by height in whole points (rounded).
    pub fn label(&self) -> String {
        format!("{}x{}", self.width.round(), self.height.round())
    }
}

/// A rendered page.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The PNG file.
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// The DPI the page was rendered at: the one asked for, or lower when the
    /// page would otherwise exceed the pixel bound.
    pub dpi: f32,
}

/// A parsed PDF.
pub struct Document {
    pdf: Pdf,
}

impl Document {
    /// Parses a PDF; fails with the parser's reason when it cannot.
    pub fn parse(data: &[u8]) -> Result<Document, Error> {
        let pdf = Pdf::new(data.to_vec()).map_err(|e| Error::Parse(load_reason(e)))?;
        if pdf.pages().is_empty() {
            return Err(Error::Parse("the page tree has no pages".into()));
        }
        Ok(Document { pdf })
    }

    /// The number of pages.
    pub fn page_count(&self) -> usize {
        self.pdf.pages().len()
    }

    /// Every page's size in points, in page order.
    pub fn page_sizes(&self) -> Vec<PageSize> {
        self.pdf
            .pages()
            .iter()
            .map(|page| {
                let (width, height) = page.render_dimensions();
                PageSize { width, height }
            })
            .collect()
    }

    /// Renders page `page` (from 1) on white at `dpi`, lowering the DPI if the
    /// image would have more than `max_pixels` pixels.
    pub fn render_png(&self, page: usize, dpi: f32, max_pixels: u64) -> Result<Rendered, Error> {
        if !(MIN_DPI..=MAX_DPI).contains(&dpi) {
            return Err(Error::BadDpi(dpi));
        }
        let pages = self.pdf.pages();
        let page = pages.get(self.index(page)?).expect("index checked");
        let (width_pt, height_pt) = page.render_dimensions();
        let (width, height, dpi) = fit_pixels(width_pt, height_pt, dpi, max_pixels)?;

        let mut ctx = RenderContext::new(width as u16, height as u16);
        // Scale each axis so the page fills the pixel grid exactly.
        let transform = Affine::scale_non_uniform(
            f64::from(width) / f64::from(width_pt),
            f64::from(height) / f64::from(height_pt),
        ) * page.initial_transform(true).to_kurbo();
        let cache = RenderCache::new();
        render_into(
            page,
            &cache,
            &InterpreterSettings::default(),
            &RenderSettings::default(),
            &mut ctx,
            transform,
        );
        ctx.flush();
        let mut pixmap = Pixmap::new(ctx.width(), ctx.height());
        ctx.render_with(
            &mut pixmap,
            &mut Resources::default(),
            RasterizerSettings {
                target_init: TargetInit::Clear(WHITE),
                ..Default::default()
            },
        );
        let png = pixmap.into_png().map_err(|e| Error::Png(e.to_string()))?;
        Ok(Rendered {
            png,
            width,
            height,
            dpi,
        })
    }

    /// The text of page `page` (from 1), one line per baseline, ending in a
    /// newline unless the page has no text.
    pub fn text(&self, page: usize) -> Result<String, Error> {
        let pages = self.pdf.pages();
        let page = pages.get(self.index(page)?).expect("index checked");
        let cache = InterpreterCache::new();
        let (width, height) = page.render_dimensions();
        let mut ctx = Context::new(
            page.initial_transform(true).to_kurbo(),
            Rect::new(0.0, 0.0, f64::from(width), f64::from(height)),
            &cache,
            page.xref(),
            InterpreterSettings::default(),
        );
        let mut collector = TextCollector::default();
        interpret_page(page, &mut ctx, &mut collector);
        Ok(layout_text(&collector.glyphs))
    }

    fn index(&self, page: usize) -> Result<usize, Error> {
        let count = self.page_count();
        if page == 0 || page > count {
            return Err(Error::NoSuchPage { page, count });
        }
        Ok(page - 1)
    }
}

/// The number of pages of a PDF.
pub fn page_count(pdf: &[u8]) -> Result<usize, Error> {
    Ok(Document::parse(pdf)?.page_count())
}

/// The sizes of a PDF's pages in points.
pub fn page_sizes(pdf: &[u8]) -> Result<Vec<PageSize>, Error> {
    Ok(Document::parse(pdf)?.page_sizes())
}

/// Page `page` (from 1) of a PDF as PNG at `dpi`, within [`DEFAULT_MAX_PIXELS`].
pub fn render_page_png(pdf: &[u8], page: usize, dpi: f32) -> Result<Vec<u8>, Error> {
    Ok(Document::parse(pdf)?
        .render_png(page, dpi, DEFAULT_MAX_PIXELS)?
        .png)
}

/// The text of page `page` (from 1) of a PDF.
pub fn page_text(pdf: &[u8], page: usize) -> Result<String, Error> {
    Document::parse(pdf)?.text(page)
}

/// The parser's reason for refusing a PDF, for people.
fn load_reason(error: LoadPdfError) -> String {
    use hayro::hayro_interpret::hayro_syntax::DecryptionError as D;
    match error {
        LoadPdfError::Invalid => {
            "no readable cross-reference table, trailer or page tree (not a PDF, or damaged)".into()
        }
        LoadPdfError::Decryption(D::PasswordProtected) => "encrypted with a password".into(),
        LoadPdfError::Decryption(D::MissingIDEntry) => {
            "encrypted, but the trailer has no ID entry to derive the key".into()
        }
        LoadPdfError::Decryption(D::InvalidEncryption) => "invalid encryption dictionary".into(),
        LoadPdfError::Decryption(D::UnsupportedAlgorithm) => {
            "encrypted with an unsupported algorithm".into()
        }
    }
}

/// The pixel size of a `width_pt` x `height_pt` page at `dpi` (rounded, at
/// least 1 per side) and the DPI used: lowered, if needed, so the image has at
/// most `max_pixels` pixels and no side longer than [`MAX_SIDE`].
pub fn fit_pixels(
    width_pt: f32,
    height_pt: f32,
    dpi: f32,
    max_pixels: u64,
) -> Result<(u32, u32, f32), Error> {
    if max_pixels == 0 {
        return Err(Error::BadMaxPixels(max_pixels));
    }
    let side = |points: f32, dpi: f32| ((points * dpi / POINTS_PER_INCH).round() as u32).max(1);
    let mut dpi = dpi;
    let area =
        f64::from(width_pt) * f64::from(height_pt) * f64::from(dpi / POINTS_PER_INCH).powi(2);
    if area > max_pixels as f64 {
        dpi *= (max_pixels as f64 / area).sqrt() as f32;
    }
    let longest = width_pt.max(height_pt);
    if side(longest, dpi) > MAX_SIDE {
        dpi = MAX_SIDE as f32 * POINTS_PER_INCH / longest;
    }
    // Rounding up may still overshoot by a row or column: step down until it fits.
    loop {
        let (w, h) = (side(width_pt, dpi), side(height_pt, dpi));
        if u64::from(w) * u64::from(h) <= max_pixels && w <= MAX_SIDE && h <= MAX_SIDE {
            return Ok((w, h, dpi));
        }
        if w == 1 && h == 1 {
            return Err(Error::BadMaxPixels(max_pixels));
        }
        dpi *= 0.999;
    }
}

/// One glyph with a known Unicode value, in page space (points, y down).
#[derive(Debug, Clone, PartialEq)]
struct PlacedGlyph {
    text: String,
    /// Where the glyph starts on its baseline.
    origin: Point,
    /// Where the next glyph would start without extra spacing.
    end: Point,
    /// The font size on the page.
    size: f64,
}

/// A device that keeps the glyphs of text and ignores all drawing.
#[derive(Default)]
struct TextCollector {
    glyphs: Vec<PlacedGlyph>,
}

impl<'a> Device<'a> for TextCollector {
    fn draw_path(&mut self, _: &BezPath, _: DrawProps<'a>, _: &DrawMode) {}
    fn push_clip_path(&mut self, _: &ClipPath) {}
    fn push_transparency_group(&mut self, _: f32, _: Option<SoftMask<'a>>, _: BlendMode) {}
    fn draw_image(&mut self, _: Image<'a, '_>, _: ImageDrawProps<'a>) {}
    fn pop_clip(&mut self) {}
    fn pop_transparency_group(&mut self) {}

    fn draw_glyph_run(&mut self, run: &GlyphRun<'_, 'a>, props: DrawProps<'a>, _: &DrawMode) {
        use hayro::hayro_interpret::font::Glyph;
        use hayro::hayro_interpret::hayro_cmap::BfString;
        for glyph in run.glyphs() {
            let Some(unicode) = glyph.as_unicode() else {
                continue;
            };
            let text = match unicode {
                BfString::Char(c) => c.to_string(),
                BfString::String(s) => s,
            };
            // Glyph space has 1,000 units per em.
            let full = props.transform * glyph.transform();
            let size = (full * Point::new(0.0, 1000.0) - full * Point::ORIGIN).hypot();
            let advance = match &**glyph {
                Glyph::Outline(outline) => outline.advance_width(),
                Glyph::Type3(type3) => type3.advance_width(),
            }
            .map_or(500.0, f64::from);
            self.glyphs.push(PlacedGlyph {
                text,
                origin: full * Point::ORIGIN,
                end: full * Point::new(advance, 0.0),
                size,
            });
        }
    }
}

/// Lays glyphs out as lines of text, in content order: a new line where the
/// baseline moves by more than half the font size, a space where a glyph
/// starts more than a quarter of the font size after the previous one ended.
fn layout_text(glyphs: &[PlacedGlyph]) -> String {
    let mut text = String::new();
    let mut previous: Option<&PlacedGlyph> = None;
    for glyph in glyphs {
        if let Some(prev) = previous {
            let size = prev.size.max(glyph.size).max(1.0);
            if (glyph.origin.y - prev.origin.y).abs() > size / 2.0 {
                text.truncate(text.trim_end_matches([' ', '\t']).len());
                text.push('\n');
            } else {
                let gap = glyph.origin.x - prev.end.x;
                let spaced = text.ends_with(char::is_whitespace)
                    || glyph.text.starts_with(char::is_whitespace);
                if !spaced && (gap > size / 4.0 || glyph.origin.x < prev.origin.x - size) {
                    text.push(' ');
                }
            }
        }
        text.push_str(&glyph.text);
        previous = Some(glyph);
    }
    let mut text: String = text
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of the PDF corpus (scripts/corpus-pdfs.sh).
    fn corpus(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/corpus/pdfs")
            .join(name);
        std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run scripts/corpus-pdfs.sh first", path.display()))
    }

    /// Width, height and RGB(A) pixels of a PNG.
    fn decode(png_data: &[u8]) -> (u32, u32, Vec<u8>, usize) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(png_data))
            .read_info()
            .expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).expect("a frame");
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf, info.color_type.samples())
    }

    fn words(text: &str) -> Vec<&str> {
        text.split_whitespace().collect()
    }

    #[test]
    fn counts_and_measures_pages() {
        let sizes = |name: &str| -> Vec<String> {
            page_sizes(&corpus(name))
                .unwrap()
                .iter()
                .map(PageSize::label)
                .collect()
        };
        assert_eq!(sizes("crazyones.pdf"), ["612x792"]);
        assert_eq!(sizes("jpeg.pdf"), ["595x842"]);
        assert_eq!(sizes("AutoCad_Simple.pdf"), ["842x595"]);
        assert_eq!(sizes("Seige_of_Vicksburg_Sample_OCR.pdf"), ["432x648"; 6]);
        assert_eq!(page_count(&corpus("pdflatex-outline.pdf")), Ok(4));
        assert_eq!(page_count(&corpus("imagemagick-images.pdf")), Ok(6));
    }

    #[test]
    fn text_matches_the_text_pypdf_ships_for_crazyones() {
        let expected = String::from_utf8(corpus("crazyones.txt")).unwrap();
        let text = page_text(&corpus("crazyones.pdf"), 1).unwrap();
        assert_eq!(words(&text), words(&expected));
        assert_eq!(text.lines().next(), Some("The Crazy Ones"));
    }

    #[test]
    fn text_of_later_pages_scans_and_scripts() {
        let latex = Document::parse(&corpus("pdflatex-outline.pdf")).unwrap();
        assert!(latex.text(1).unwrap().starts_with("Contents\n1 Foo 2\n"));
        assert!(
            latex
                .text(2)
                .unwrap()
                .contains("Hello, here is some text without a meaning.")
        );
        // Invisible OCR text over a scanned page.
        let scan = page_text(&corpus("Seige_of_Vicksburg_Sample_OCR.pdf"), 1).unwrap();
        assert!(scan.contains("Johnston is coming with fifty"), "{scan}");
        let multilang = page_text(&corpus("multilang.pdf"), 1).unwrap();
        for line in ["Hello World", "Привет, мир", "こんにちは世界"] {
            assert!(multilang.lines().any(|l| l == line), "{multilang}");
        }
        // A page that is only an image has no text.
        assert_eq!(
            page_text(&corpus("imagemagick-images.pdf"), 2).unwrap(),
            "Background\n"
        );
    }

    #[test]
    fn renders_at_the_requested_dpi() {
        let doc = Document::parse(&corpus("jpeg.pdf")).unwrap();
        for (dpi, width, height) in [(72.0, 595, 842), (96.0, 793, 1123), (18.0, 149, 211)] {
            let page = doc.render_png(1, dpi, DEFAULT_MAX_PIXELS).unwrap();
            assert_eq!((page.width, page.height, page.dpi), (width, height, dpi));
            let (w, h, _, _) = decode(&page.png);
            assert_eq!((w, h), (width, height));
        }
        let landscape = render_page_png(&corpus("AutoCad_Simple.pdf"), 1, 72.0).unwrap();
        let (width, height, _, _) = decode(&landscape);
        assert_eq!((width, height), (842, 595));
    }

    #[test]
    fn renders_ink_where_the_page_has_it() {
        // The JPEG of red, green and blue dice sits in the top half of the
        // page; the bottom half is blank paper.
        let (width, height, pixels, samples) =
            decode(&render_page_png(&corpus("jpeg.pdf"), 1, 72.0).unwrap());
        let row =
            |y: u32| &pixels[(y * width) as usize * samples..((y + 1) * width) as usize * samples];
        let inked = |y: u32| {
            row(y)
                .chunks(samples)
                .filter(|p| p[..3] != [255, 255, 255])
                .count()
        };
        let top: usize = (100..350).map(inked).sum();
        let bottom: usize = (height - 200..height).map(inked).sum();
        assert!(top > 20_000, "{top}");
        assert_eq!(bottom, 0);
        let reddish = (100..350)
            .flat_map(|y| {
                row(y)
                    .chunks(samples)
                    .map(|p| (p[0], p[1], p[2]))
                    .collect::<Vec<_>>()
            })
            .filter(|&(r, g, b)| r > 150 && g < 80 && b < 80)
            .count();
        assert!(reddish > 1_000, "{reddish}");
    }

    #[test]
    fn a_huge_request_is_scaled_down_to_the_pixel_bound() {
        let doc = Document::parse(&corpus("crazyones.pdf")).unwrap();
        let page = doc.render_png(1, 600.0, 1_000_000).unwrap();
        assert!(u64::from(page.width) * u64::from(page.height) <= 1_000_000);
        assert!(page.dpi < 600.0 && page.dpi > 90.0, "{}", page.dpi);
        assert_eq!(decode(&page.png).0, page.width);
    }

    #[test]
    fn fit_pixels_bounds_area_and_sides() {
        assert_eq!(
            fit_pixels(612.0, 792.0, 72.0, 10_000_000),
            Ok((612, 792, 72.0))
        );
        assert_eq!(fit_pixels(4.0, 4.0, 18.0, 10), Ok((1, 1, 18.0)));
        let (w, h, dpi) = fit_pixels(14_400.0, 14_400.0, 600.0, u64::MAX).unwrap();
        assert!(w <= MAX_SIDE && h <= MAX_SIDE && dpi < 600.0);
        let (w, h, _) = fit_pixels(612.0, 792.0, 600.0, 100_000).unwrap();
        assert!(u64::from(w) * u64::from(h) <= 100_000 && w > 200);
        assert_eq!(
            fit_pixels(612.0, 792.0, 72.0, 0),
            Err(Error::BadMaxPixels(0))
        );
    }

    #[test]
    fn refuses_bad_pages_and_dpi() {
        let doc = Document::parse(&corpus("crazyones.pdf")).unwrap();
        assert_eq!(doc.text(0), Err(Error::NoSuchPage { page: 0, count: 1 }));
        assert_eq!(
            doc.render_png(2, 72.0, DEFAULT_MAX_PIXELS),
            Err(Error::NoSuchPage { page: 2, count: 1 })
        );
        assert_eq!(
            doc.render_png(1, 17.0, DEFAULT_MAX_PIXELS),
            Err(Error::BadDpi(17.0))
        );
        assert!(matches!(
            doc.render_png(1, f32::NAN, 1),
            Err(Error::BadDpi(_))
        ));
    }

    #[test]
    fn damaged_and_encrypted_pdfs_fail_with_the_parsers_reason() {
        let encrypted = Document::parse(&corpus("encrypted-file.pdf"))
            .err()
            .unwrap();
        assert_eq!(
            encrypted.to_string(),
            "unreadable PDF: encrypted with a password"
        );
        let whole = corpus("crazyones.pdf");
        for cut in [0, 100, whole.len() / 2] {
            let Err(error) = Document::parse(&whole[..cut]) else {
                panic!("cut at {cut}: parsed");
            };
            assert!(
                matches!(&error, Error::Parse(reason) if reason.contains("cross-reference")),
                "{cut}: {error}"
            );
        }
        // Losing only the cross-reference table and trailer is repaired by
        // scanning the objects.
        let repaired = &whole[..whole.len() - 100];
        assert_eq!(page_text(repaired, 1), page_text(&whole, 1));
        let not_pdf = corpus("crazyones.txt");
        assert!(matches!(page_count(&not_pdf), Err(Error::Parse(_))));
    }
}
