//! PNG output without system fonts: plotters' bitmap backend with text drawn from a built-in
//! 8×8 bitmap font, encoded with the `png` crate.
//!
//! Why not the obvious routes: plotters' bitmap backend draws no text at all unless it has a
//! TrueType rasterizer (`ttf` needs fontconfig; `ab_glyph` needs a font file we would have to
//! ship), and rendering the SVG with resvg costs ~66 crates and still needs system fonts for
//! text. `font8x8` (public-domain glyphs, no dependencies) plus `png` build in about two
//! seconds and give crisp, readable axes anywhere.

use plotters::backend::{BitMapBackend, DrawingBackend};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
};

/// Glyph cell size of the font, pixels.
const CELL: i32 = 8;

/// A bitmap backend that draws text with the built-in 8×8 font.
pub struct GlyphBackend<'a> {
    inner: BitMapBackend<'a>,
}

impl<'a> GlyphBackend<'a> {
    /// Draws into an RGB buffer of `w × h × 3` bytes.
    pub fn new(buf: &'a mut [u8], size: (u32, u32)) -> Self {
        GlyphBackend {
            inner: BitMapBackend::with_buffer(buf, size),
        }
    }
}

/// Integer scale of the 8×8 font for a requested size: nearest-neighbour scaling by a
/// fraction would make strokes uneven, so sizes snap to 8, 16, 24 ... pixels.
fn scale(size: f64) -> i32 {
    ((size / 13.0).round() as i32).max(1)
}

fn glyph(c: char) -> [u8; 8] {
    let code = c as usize;
    match code {
        0x20..0x80 => font8x8::legacy::BASIC_LEGACY[code],
        0xA0..0x100 => font8x8::legacy::LATIN_LEGACY[code - 0xA0],
        // Common typography of our own labels, mapped to the nearest ASCII.
        _ => match c {
            '·' | '•' => font8x8::legacy::BASIC_LEGACY[b'.' as usize],
            '≈' => font8x8::legacy::BASIC_LEGACY[b'~' as usize],
            '–' | '—' | '−' => font8x8::legacy::BASIC_LEGACY[b'-' as usize],
            _ => font8x8::legacy::BASIC_LEGACY[b'?' as usize],
        },
    }
}

impl<'a> DrawingBackend for GlyphBackend<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<TStyle: BackendTextStyle>(
        &self,
        text: &str,
        style: &TStyle,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let s = scale(style.size());
        let n = text.chars().count() as i32;
        Ok(((n * CELL * s) as u32, (CELL * s) as u32))
    }

    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let s = scale(style.size());
        let (w, h) = (text.chars().count() as i32 * CELL * s, CELL * s);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Center => -w / 2,
            HPos::Right => -w,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -h / 2,
            VPos::Bottom => -h,
        };
        let trans = style.transform();
        let (bw, bh) = self.get_size();
        for (i, c) in text.chars().enumerate() {
            let rows = glyph(c);
            for (gy, row) in rows.iter().enumerate() {
                for gx in 0..8 {
                    if row & (1 << gx) == 0 {
                        continue;
                    }
                    for sy in 0..s {
                        for sx in 0..s {
                            let x = i as i32 * CELL * s + gx * s + sx + dx;
                            let y = gy as i32 * s + sy + dy;
                            let (x, y) = trans.transform(x, y);
                            let (x, y) = (pos.0 + x, pos.1 + y);
                            if x >= 0 && y >= 0 && (x as u32) < bw && (y as u32) < bh {
                                self.inner.draw_pixel((x, y), color)?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Encodes an RGB buffer as an 8-bit RGB PNG file's bytes.
pub fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(rgb).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyph_table_covers_labels() {
        assert_ne!(glyph('A'), [0; 8]);
        assert_ne!(glyph('é'), [0; 8]);
        assert_eq!(glyph('≈'), glyph('~'));
        assert_eq!(glyph('\u{2603}'), glyph('?'));
        assert_eq!(scale(12.0), 1);
        assert_eq!(scale(26.0), 2);
    }
}
