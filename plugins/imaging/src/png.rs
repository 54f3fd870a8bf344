//! Lossless PNG encoding: reduces the pixels to their smallest exact form (8 bits
//! instead of 16, no opaque alpha, gray, palette, low bit depths), tries every row filter and deflates the best.

use image::DynamicImage;

const SIGNATURE: [u8; 8] = [137, 80, 78, 71, 13, 10, 26, 10];

/// Ancillary chunks that say something about the image whatever the way its
/// pixels are stored: copied from the original. The others (bKGD, sBIT, hIST,
/// sPLT) depend on the pixel format and are dropped.
const KEPT: [&[u8; 4]; 11] = [
    b"cHRM", b"gAMA", b"iCCP", b"sRGB", b"cICP", b"pHYs", b"tEXt", b"zTXt", b"iTXt", b"eXIf",
    b"tIME",
];

/// Deflate level used to compare the candidate encodings, and the final one.
const TRIAL_LEVEL: u8 = 4;
const FINAL_LEVEL: u8 = 10;

/// How hard the final deflate works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// miniz_oxide at its best level: fast.
    Default,
    /// Zopfli: a few percent smaller, tens of times slower.
    Max,
}

/// The image data compressed as a zlib stream.
fn deflate(data: &[u8], effort: Effort) -> Vec<u8> {
    match effort {
        Effort::Default => miniz_oxide::deflate::compress_to_vec_zlib(data, FINAL_LEVEL),
        Effort::Max => {
            let mut out = Vec::new();
            zopfli::compress(
                zopfli::Options::default(),
                zopfli::Format::Zlib,
                data,
                &mut out,
            )
            .expect("writing to a Vec cannot fail");
            out
        }
    }
}

/// One PNG chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The chunk type, e.g. `IHDR`.
    pub kind: [u8; 4],
    /// Its data.
    pub data: Vec<u8>,
}

/// The chunks of a PNG file, in order; stops at the first malformed one.
pub fn chunks(png: &[u8]) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut rest = png.get(8..).unwrap_or_default();
    while rest.len() >= 12 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(data) = rest.get(8..8 + len) else {
            break;
        };
        out.push(Chunk {
            kind: [rest[4], rest[5], rest[6], rest[7]],
            data: data.to_vec(),
        });
        rest = &rest[(12 + len).min(rest.len())..];
    }
    out
}

/// The ancillary chunks of `png` worth keeping in a re-encoded copy.
pub fn kept_chunks(png: &[u8]) -> Vec<Chunk> {
    chunks(png)
        .into_iter()
        .filter(|c| KEPT.contains(&&c.kind))
        .collect()
}

/// An `iCCP` chunk holding `profile`.
pub fn iccp_chunk(profile: &[u8]) -> Chunk {
    let mut data = b"ICC Profile\0\0".to_vec();
    data.extend(miniz_oxide::deflate::compress_to_vec_zlib(profile, 9));
    Chunk {
        kind: *b"iCCP",
        data,
    }
}

/// Pixels as samples of 8 or 16 bits, 1 to 4 channels (gray, gray+alpha, RGB, RGBA).
#[derive(Debug, Clone, PartialEq)]
struct Pixels {
    width: u32,
    height: u32,
    channels: usize,
    sixteen: bool,
    samples: Vec<u16>,
}

impl Pixels {
    fn from_image(image: &DynamicImage) -> Self {
        fn wide(v: &[u8]) -> Vec<u16> {
            v.iter().map(|&s| u16::from(s)).collect()
        }
        let (channels, sixteen, samples) = match image {
            DynamicImage::ImageLuma8(b) => (1, false, wide(b.as_raw())),
            DynamicImage::ImageLumaA8(b) => (2, false, wide(b.as_raw())),
            DynamicImage::ImageRgb8(b) => (3, false, wide(b.as_raw())),
            DynamicImage::ImageRgba8(b) => (4, false, wide(b.as_raw())),
            DynamicImage::ImageLuma16(b) => (1, true, b.as_raw().clone()),
            DynamicImage::ImageLumaA16(b) => (2, true, b.as_raw().clone()),
            DynamicImage::ImageRgb16(b) => (3, true, b.as_raw().clone()),
            other => (4, true, other.to_rgba16().into_raw()),
        };
        Pixels {
            width: image.width(),
            height: image.height(),
            channels,
            sixteen,
            samples,
        }
    }

    /// 16-bit samples whose two bytes are equal are exactly their 8-bit value.
    fn reduce_depth(&mut self) {
        if self.sixteen && self.samples.iter().all(|&s| s >> 8 == s & 0xff) {
            self.samples.iter_mut().for_each(|s| *s >>= 8);
            self.sixteen = false;
        }
    }

    /// Drops an alpha channel that is opaque everywhere.
    fn reduce_alpha(&mut self) {
        let c = self.channels;
        let opaque = if self.sixteen { u16::MAX } else { 255 };
        if c.is_multiple_of(2) && self.samples.chunks(c).all(|p| p[c - 1] == opaque) {
            self.samples = self
                .samples
                .chunks(c)
                .flat_map(|p| p[..c - 1].iter().copied())
                .collect();
            self.channels -= 1;
        }
    }

    /// Turns colour where red, green and blue are always equal into gray.
    fn reduce_gray(&mut self) {
        let c = self.channels;
        if c >= 3 && self.samples.chunks(c).all(|p| p[0] == p[1] && p[1] == p[2]) {
            self.samples = self
                .samples
                .chunks(c)
                .flat_map(|p| std::iter::once(p[0]).chain(p[3..].iter().copied()))
                .collect();
            self.channels -= 2;
        }
    }

    /// The distinct colours as RGBA, if there are at most 256 of 8 bits.
    fn palette(&self) -> Option<(Vec<[u8; 4]>, Vec<u8>)> {
        if self.sixteen {
            return None;
        }
        let c = self.channels;
        let mut colors: Vec<[u8; 4]> = Vec::new();
        let mut lookup = std::collections::HashMap::new();
        let mut indices = Vec::with_capacity(self.samples.len() / c);
        for p in self.samples.chunks(c) {
            let rgba = match c {
                1 => [p[0], p[0], p[0], 255],
                2 => [p[0], p[0], p[0], p[1]],
                3 => [p[0], p[1], p[2], 255],
                _ => [p[0], p[1], p[2], p[3]],
            }
            .map(|s| s as u8);
            let next = lookup.len();
            let index = *lookup.entry(rgba).or_insert(next);
            if index == next {
                if next == 256 {
                    return None;
                }
                colors.push(rgba);
            }
            indices.push(index);
        }
        // Translucent entries first, so that tRNS stays as short as possible.
        let mut order: Vec<usize> = (0..colors.len()).collect();
        order.sort_by_key(|&i| colors[i][3] == 255);
        let mut new_index = vec![0u8; colors.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new as u8;
        }
        let palette = order.iter().map(|&i| colors[i]).collect();
        Some((palette, indices.iter().map(|&i| new_index[i]).collect()))
    }
}

/// One way of storing the pixels: IHDR colour type and depth, palette, packed rows.
struct Layout {
    color_type: u8,
    depth: u8,
    palette: Vec<[u8; 4]>,
    /// Bytes per pixel for the filters (at least 1).
    bpp: usize,
    rows: Vec<Vec<u8>>,
}

fn bits_for(count: usize) -> u8 {
    match count {
        0..=2 => 1,
        3..=4 => 2,
        5..=16 => 4,
        _ => 8,
    }
}

/// Packs one row of values of `depth` bits (1, 2, 4 or 8), most significant first.
fn pack(values: &[u8], depth: u8) -> Vec<u8> {
    if depth == 8 {
        return values.to_vec();
    }
    let per_byte = (8 / depth) as usize;
    values
        .chunks(per_byte)
        .map(|group| {
            group.iter().enumerate().fold(0u8, |byte, (i, &v)| {
                byte | (v << (8 - depth as usize * (i + 1)))
            })
        })
        .collect()
}

/// The direct (non-palette) layout of reduced pixels.
fn direct(px: &Pixels) -> Layout {
    let width = px.width as usize;
    let color_type = match px.channels {
        1 => 0,
        2 => 4,
        3 => 2,
        _ => 6,
    };
    if px.sixteen {
        let rows = px
            .samples
            .chunks(width * px.channels)
            .map(|row| row.iter().flat_map(|s| s.to_be_bytes()).collect())
            .collect();
        return Layout {
            color_type,
            depth: 16,
            palette: vec![],
            bpp: 2 * px.channels,
            rows,
        };
    }
    // Gray whose levels all sit on a coarser scale is stored with fewer bits.
    let depth = if px.channels == 1 {
        [1u8, 2, 4]
            .into_iter()
            .find(|&d| {
                let step = 255 / ((1u16 << d) - 1);
                px.samples.iter().all(|s| s.is_multiple_of(step))
            })
            .unwrap_or(8)
    } else {
        8
    };
    let step = if depth == 8 {
        1
    } else {
        255 / ((1u16 << depth) - 1)
    };
    let rows = px
        .samples
        .chunks(width * px.channels)
        .map(|row| {
            let values: Vec<u8> = row.iter().map(|&s| (s / step) as u8).collect();
            pack(&values, depth)
        })
        .collect();
    Layout {
        color_type,
        depth,
        palette: vec![],
        bpp: px.channels,
        rows,
    }
}

fn paletted(px: &Pixels) -> Option<Layout> {
    let (palette, indices) = px.palette()?;
    let depth = bits_for(palette.len());
    let rows = indices
        .chunks(px.width as usize)
        .map(|row| pack(row, depth))
        .collect();
    Some(Layout {
        color_type: 3,
        depth,
        palette,
        bpp: 1,
        rows,
    })
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = a as i16 + b as i16 - c as i16;
    let (pa, pb, pc) = (
        (p - a as i16).abs(),
        (p - b as i16).abs(),
        (p - c as i16).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

/// Applies filter `kind` (0 none, 1 sub, 2 up, 3 average, 4 Paeth) to `row`
/// (`prev` is the row above, zeros for the first), writing `row.len()` bytes
/// to `out`. One loop per kind over whole slices, with no bounds checks
/// inside, so the compiler vectorizes it (SSE natively, simd128 in wasm).
fn filter_row(kind: u8, row: &[u8], prev: &[u8], bpp: usize, out: &mut [u8]) {
    let n = row.len();
    let (out, prev) = (&mut out[..n], &prev[..n]);
    let bpp = bpp.min(n);
    // The first pixel has no left neighbour: a = c = 0.
    let (head, tail) = out.split_at_mut(bpp);
    let (row_head, row_tail) = row.split_at(bpp);
    let (prev_head, prev_tail) = prev.split_at(bpp);
    let (left, up_left) = (&row[..n - bpp], &prev[..n - bpp]);
    match kind {
        0 => out.copy_from_slice(row),
        1 => {
            head.copy_from_slice(row_head);
            for ((o, &x), &a) in tail.iter_mut().zip(row_tail).zip(left) {
                *o = x.wrapping_sub(a);
            }
        }
        2 => {
            for ((o, &x), &b) in out.iter_mut().zip(row).zip(prev) {
                *o = x.wrapping_sub(b);
            }
        }
        3 => {
            for ((o, &x), &b) in head.iter_mut().zip(row_head).zip(prev_head) {
                *o = x.wrapping_sub(b / 2);
            }
            for (((o, &x), &a), &b) in tail.iter_mut().zip(row_tail).zip(left).zip(prev_tail) {
                *o = x.wrapping_sub(((a as u16 + b as u16) / 2) as u8);
            }
        }
        _ => {
            // Paeth with a = c = 0 predicts b.
            for ((o, &x), &b) in head.iter_mut().zip(row_head).zip(prev_head) {
                *o = x.wrapping_sub(b);
            }
            for ((((o, &x), &a), &b), &c) in tail
                .iter_mut()
                .zip(row_tail)
                .zip(left)
                .zip(prev_tail)
                .zip(up_left)
            {
                *o = x.wrapping_sub(paeth(a, b, c));
            }
        }
    }
}

/// Sum of the filtered bytes taken as signed: the usual guess at which filter
/// compresses best. Summed per 64 KiB in 32 bits, which cannot overflow there.
fn cost(filtered: &[u8]) -> u64 {
    filtered
        .chunks(1 << 16)
        .map(|chunk| {
            chunk
                .iter()
                .map(|&b| (b as i8).unsigned_abs() as u32)
                .sum::<u32>() as u64
        })
        .sum()
}

/// The filtered image data: one filter for every row (`0..=4`), or the
/// cheapest per row (`5`, "minimum sum of absolute differences").
fn filtered(layout: &Layout, strategy: u8) -> Vec<u8> {
    let width = layout.rows.first().map_or(0, Vec::len);
    let mut out = vec![0u8; layout.rows.len() * (width + 1)];
    let zero = vec![0u8; width];
    // Strategy 5 tries every filter on a row in these, then keeps the cheapest.
    let mut trials = [(); 5].map(|_| vec![0u8; width]);
    for ((i, row), line) in layout
        .rows
        .iter()
        .enumerate()
        .zip(out.chunks_mut(width + 1))
    {
        let prev = if i == 0 { &zero } else { &layout.rows[i - 1] };
        let (kind, data) = line.split_at_mut(1);
        if strategy < 5 {
            kind[0] = strategy;
            filter_row(strategy, row, prev, layout.bpp, data);
            continue;
        }
        let mut best = (u64::MAX, 0);
        for (k, trial) in trials.iter_mut().enumerate() {
            filter_row(k as u8, row, prev, layout.bpp, trial);
            let c = cost(trial);
            if c < best.0 {
                best = (c, k);
            }
        }
        kind[0] = best.1 as u8;
        data.copy_from_slice(&trials[best.1]);
    }
    out
}

fn write_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    out.extend(kind);
    out.extend(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend(crc.finalize().to_be_bytes());
}

/// Encodes `image` as the smallest PNG this encoder finds, with `kept`
/// ancillary chunks. With `keep_family`, gray stays gray and colour stays
/// colour (an embedded ICC profile is for one or the other).
pub fn encode(image: &DynamicImage, kept: &[Chunk], keep_family: bool, effort: Effort) -> Vec<u8> {
    let mut px = Pixels::from_image(image);
    let color = px.channels >= 3;
    px.reduce_depth();
    px.reduce_alpha();
    if !(keep_family && color) {
        px.reduce_gray();
    }
    let mut layouts = vec![direct(&px)];
    if (!keep_family || color)
        && let Some(p) = paletted(&px)
    {
        layouts.push(p);
    }
    let mut best: Option<(usize, usize, u8)> = None;
    for (i, layout) in layouts.iter().enumerate() {
        for strategy in 0..=5 {
            let size = miniz_oxide::deflate::compress_to_vec_zlib(
                &filtered(layout, strategy),
                TRIAL_LEVEL,
            )
            .len();
            if best.is_none_or(|(b, _, _)| size < b) {
                best = Some((size, i, strategy));
            }
        }
    }
    let (_, index, strategy) = best.expect("at least one layout");
    let layout = &layouts[index];
    let idat = deflate(&filtered(layout, strategy), effort);

    let mut out = SIGNATURE.to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend(px.width.to_be_bytes());
    ihdr.extend(px.height.to_be_bytes());
    ihdr.extend([layout.depth, layout.color_type, 0, 0, 0]);
    write_chunk(&mut out, b"IHDR", &ihdr);
    for chunk in kept {
        write_chunk(&mut out, &chunk.kind, &chunk.data);
    }
    if !layout.palette.is_empty() {
        let plte: Vec<u8> = layout
            .palette
            .iter()
            .flat_map(|c| [c[0], c[1], c[2]])
            .collect();
        write_chunk(&mut out, b"PLTE", &plte);
        let trns: Vec<u8> = layout
            .palette
            .iter()
            .map(|c| c[3])
            .take_while(|&a| a < 255)
            .collect();
        if !trns.is_empty() {
            write_chunk(&mut out, b"tRNS", &trns);
        }
    }
    write_chunk(&mut out, b"IDAT", &idat);
    write_chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Rgb, RgbImage, Rgba, RgbaImage};

    fn decode(png: &[u8]) -> DynamicImage {
        image::load_from_memory_with_format(png, image::ImageFormat::Png).expect("decodes")
    }

    fn header(png: &[u8]) -> (u8, u8) {
        let ihdr = &chunks(png)[0];
        assert_eq!(&ihdr.kind, b"IHDR");
        (ihdr.data[8], ihdr.data[9])
    }

    #[test]
    fn packs_low_depths_most_significant_first() {
        assert_eq!(
            pack(&[1, 0, 1, 1, 0, 0, 0, 1, 1], 1),
            vec![0b1011_0001, 0b1000_0000]
        );
        assert_eq!(pack(&[3, 2, 1], 2), vec![0b1110_0100]);
        assert_eq!(pack(&[0xa, 0x5, 0xf], 4), vec![0xa5, 0xf0]);
    }

    /// The filters as the PNG specification writes them, byte by byte.
    fn filter_row_by_the_book(kind: u8, row: &[u8], prev: &[u8], bpp: usize) -> Vec<u8> {
        (0..row.len())
            .map(|i| {
                let a = if i >= bpp { row[i - bpp] } else { 0 };
                let b = prev[i];
                let c = if i >= bpp { prev[i - bpp] } else { 0 };
                let predicted = match kind {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => ((a as u16 + b as u16) / 2) as u8,
                    _ => paeth(a, b, c),
                };
                row[i].wrapping_sub(predicted)
            })
            .collect()
    }

    #[test]
    fn filters_match_the_specification_byte_for_byte() {
        // A fixed pseudo-random sequence (xorshift), so rows hold every kind of neighbour.
        let mut state = 0x9e37_79b9_u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        };
        for len in [0usize, 1, 2, 3, 7, 8, 31, 64, 257] {
            for bpp in 1..=8 {
                let row: Vec<u8> = (0..len).map(|_| next()).collect();
                let prev: Vec<u8> = (0..len).map(|_| next()).collect();
                for kind in 0..5 {
                    let mut out = vec![0u8; len];
                    filter_row(kind, &row, &prev, bpp, &mut out);
                    assert_eq!(
                        out,
                        filter_row_by_the_book(kind, &row, &prev, bpp),
                        "kind {kind}, bpp {bpp}, {len} bytes"
                    );
                }
            }
        }
    }

    #[test]
    fn min_sum_keeps_the_cheapest_filter_of_each_row() {
        // Row 0 is a ramp (sub makes it all ones), row 1 repeats it (up makes it all zeros).
        let ramp: Vec<u8> = (0..16).collect();
        let layout = Layout {
            color_type: 0,
            depth: 8,
            palette: vec![],
            bpp: 1,
            rows: vec![ramp.clone(), ramp],
        };
        let out = filtered(&layout, 5);
        assert_eq!(out.len(), 2 * 17);
        assert_eq!(out[0], 1, "row 0: sub");
        assert!(out[2..17].iter().all(|&b| b == 1));
        assert_eq!(out[17], 2, "row 1: up");
        assert!(out[18..].iter().all(|&b| b == 0));
    }

    #[test]
    fn paeth_picks_the_nearest_neighbour() {
        assert_eq!(paeth(10, 20, 10), 20);
        assert_eq!(paeth(20, 10, 10), 20);
        assert_eq!(paeth(10, 10, 20), 10);
    }

    #[test]
    fn opaque_equal_channel_colour_becomes_one_bit_gray() {
        let img = RgbaImage::from_fn(33, 7, |x, y| {
            let v = if (x + y) % 3 == 0 { 255 } else { 0 };
            Rgba([v, v, v, 255])
        });
        let png = encode(
            &DynamicImage::ImageRgba8(img.clone()),
            &[],
            false,
            Effort::Default,
        );
        // Gray at 1 bit, or a 2-entry palette at 1 bit: either way 1 bit per pixel.
        let (depth, _) = header(&png);
        assert_eq!(depth, 1);
        assert_eq!(decode(&png).to_rgba8(), img);
    }

    #[test]
    fn few_colours_become_a_palette_with_transparency() {
        let colors = [
            Rgba([255, 0, 0, 255]),
            Rgba([0, 0, 255, 128]),
            Rgba([0, 200, 0, 0]),
        ];
        let img = RgbaImage::from_fn(40, 40, |x, y| colors[((x / 4 + y / 7) % 3) as usize]);
        let png = encode(
            &DynamicImage::ImageRgba8(img.clone()),
            &[],
            false,
            Effort::Default,
        );
        assert_eq!(header(&png), (2, 3));
        let trns = chunks(&png)
            .into_iter()
            .find(|c| &c.kind == b"tRNS")
            .expect("tRNS");
        assert_eq!(trns.data.len(), 2);
        assert_eq!(decode(&png).to_rgba8(), img);
    }

    #[test]
    fn sixteen_bit_with_equal_bytes_becomes_eight_bit() {
        let img = image::ImageBuffer::from_fn(300, 2, |x, _| {
            let v = (x % 256) as u16 * 257;
            Rgb([v, 65535 - v, v])
        });
        let png = encode(
            &DynamicImage::ImageRgb16(img.clone()),
            &[],
            false,
            Effort::Default,
        );
        assert_eq!(header(&png).0, 8);
        assert_eq!(decode(&png).to_rgb16(), img);
    }

    #[test]
    fn true_sixteen_bit_stays_sixteen_bit() {
        let img =
            image::ImageBuffer::from_fn(20, 20, |x, y| image::Luma([(x * 3001 + y * 7) as u16]));
        let png = encode(
            &DynamicImage::ImageLuma16(img.clone()),
            &[],
            false,
            Effort::Default,
        );
        assert_eq!(header(&png), (16, 0));
        assert_eq!(decode(&png).to_luma16(), img);
    }

    #[test]
    fn keep_family_keeps_colour_for_an_icc_profile() {
        let img = RgbImage::from_fn(300, 1, |x, _| {
            let v = x as u8;
            Rgb([v, v, v])
        });
        let kept = [iccp_chunk(b"not really a profile")];
        let png = encode(
            &DynamicImage::ImageRgb8(img.clone()),
            &kept,
            true,
            Effort::Default,
        );
        // Truecolour or a palette (colour too), never gray (type 0).
        assert!(matches!(header(&png), (8, 2 | 3)), "{:?}", header(&png));
        assert!(chunks(&png).iter().any(|c| &c.kind == b"iCCP"));
        let gray = encode(&DynamicImage::ImageRgb8(img), &[], false, Effort::Default);
        assert_eq!(header(&gray), (8, 0));
    }

    #[test]
    fn max_effort_is_lossless_and_not_larger() {
        let img = RgbImage::from_fn(96, 40, |x, y| {
            Rgb([(x * 2) as u8, (y * 5) as u8, (x ^ y) as u8])
        });
        let image = DynamicImage::ImageRgb8(img.clone());
        let default = encode(&image, &[], false, Effort::Default);
        let max = encode(&image, &[], false, Effort::Max);
        assert!(
            max.len() <= default.len(),
            "{} > {}",
            max.len(),
            default.len()
        );
        assert_eq!(decode(&max).to_rgb8(), img);
    }

    #[test]
    fn gray_levels_on_a_coarse_scale_use_fewer_bits() {
        let img = GrayImage::from_fn(300, 3, |x, _| image::Luma([(x % 16) as u8 * 17]));
        let png = encode(
            &DynamicImage::ImageLuma8(img.clone()),
            &[],
            true,
            Effort::Default,
        );
        assert_eq!(header(&png), (4, 0));
        assert_eq!(decode(&png).to_luma8(), img);
    }
}
