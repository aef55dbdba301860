//! One drawing vocabulary, two renderers: the charts are drawn once against [`Canvas`],
//! and come out as SVG (text) or as pixels for the PNG, so the two always show the same
//! thing. Pixels use an 8x8 bitmap font compiled in (font8x8), so a clean machine with no
//! fonts renders the PNG exactly as a developer's does.

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    pub const WHITE: Rgb = Rgb(255, 255, 255);
    pub const BLACK: Rgb = Rgb(20, 20, 20);
    pub const GREY: Rgb = Rgb(150, 150, 150);
    pub const LIGHT: Rgb = Rgb(225, 225, 225);
    pub const BLUE: Rgb = Rgb(52, 101, 164);
    pub const RED: Rgb = Rgb(204, 51, 51);
    pub const GREEN: Rgb = Rgb(78, 154, 6);

    fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

/// What a chart needs to draw. Coordinates are pixels from the top left.
pub trait Canvas {
    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, color: Rgb, width: f64);
    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, color: Rgb);
    fn circle(&mut self, x: f64, y: f64, r: f64, color: Rgb);
    /// `size` 1 = 8 px glyphs, 2 = 16 px; `y` is the text's vertical middle.
    fn text(&mut self, x: f64, y: f64, text: &str, anchor: Anchor, size: u32, color: Rgb);
}

/// Width in pixels of `text` at `size` (monospace, 8 px a glyph).
pub fn text_width(text: &str, size: u32) -> f64 {
    (text.chars().count() * 8 * size as usize) as f64
}

#[derive(Debug)]
pub struct Svg {
    w: u32,
    h: u32,
    body: String,
}

impl Svg {
    pub fn new(w: u32, h: u32) -> Self {
        Svg {
            w,
            h,
            body: String::new(),
        }
    }
    pub fn finish(self) -> String {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
             font-family=\"monospace\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\n{}</svg>\n",
            self.body,
            w = self.w,
            h = self.h
        )
    }
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Canvas for Svg {
    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, color: Rgb, width: f64) {
        let _ = writeln!(
            self.body,
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"{}\" stroke-width=\"{width}\"/>",
            color.hex()
        );
    }
    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, color: Rgb) {
        let _ = writeln!(
            self.body,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{}\"/>",
            color.hex()
        );
    }
    fn circle(&mut self, x: f64, y: f64, r: f64, color: Rgb) {
        let _ = writeln!(
            self.body,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r}\" fill=\"{}\"/>",
            color.hex()
        );
    }
    fn text(&mut self, x: f64, y: f64, text: &str, anchor: Anchor, size: u32, color: Rgb) {
        let a = match anchor {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        };
        // 8 px glyphs at size 1, as in the PNG; `textLength` keeps the widths equal.
        let len = text_width(text, size);
        let _ = writeln!(
            self.body,
            "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"{}\" text-anchor=\"{a}\" textLength=\"{len}\" \
             lengthAdjust=\"spacingAndGlyphs\" fill=\"{}\">{}</text>",
            y + 4.0 * size as f64,
            12 * size,
            color.hex(),
            escape(text)
        );
    }
}

/// An RGB pixel buffer.
#[derive(Debug)]
pub struct Pixels {
    pub w: u32,
    pub h: u32,
    pub rgb: Vec<u8>,
}

impl Pixels {
    pub fn new(w: u32, h: u32) -> Self {
        Pixels {
            w,
            h,
            rgb: vec![255; (w * h * 3) as usize],
        }
    }

    fn put(&mut self, x: i64, y: i64, c: Rgb) {
        if x < 0 || y < 0 || x >= i64::from(self.w) || y >= i64::from(self.h) {
            return;
        }
        let i = ((y as u32 * self.w + x as u32) * 3) as usize;
        self.rgb[i..i + 3].copy_from_slice(&[c.0, c.1, c.2]);
    }

    /// The buffer as a PNG file.
    pub fn png(&self) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.w, self.h);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().expect("writing to a Vec cannot fail");
            w.write_image_data(&self.rgb).expect("the buffer matches the header");
        }
        out
    }
}

impl Canvas for Pixels {
    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, color: Rgb, width: f64) {
        let steps = (x2 - x1).abs().max((y2 - y1).abs()).ceil().max(1.0) as i64;
        let half = ((width - 1.0) / 2.0).max(0.0).round() as i64;
        for i in 0..=steps {
            let t = i as f64 / steps as f64;
            let (x, y) = ((x1 + (x2 - x1) * t).round() as i64, (y1 + (y2 - y1) * t).round() as i64);
            for dx in -half..=half {
                for dy in -half..=half {
                    self.put(x + dx, y + dy, color);
                }
            }
        }
    }
    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, color: Rgb) {
        for yy in y.round() as i64..(y + h).round() as i64 {
            for xx in x.round() as i64..(x + w).round() as i64 {
                self.put(xx, yy, color);
            }
        }
    }
    fn circle(&mut self, x: f64, y: f64, r: f64, color: Rgb) {
        let ri = r.ceil() as i64;
        for dy in -ri..=ri {
            for dx in -ri..=ri {
                if (dx * dx + dy * dy) as f64 <= r * r {
                    self.put(x.round() as i64 + dx, y.round() as i64 + dy, color);
                }
            }
        }
    }
    fn text(&mut self, x: f64, y: f64, text: &str, anchor: Anchor, size: u32, color: Rgb) {
        let w = text_width(text, size);
        let left = match anchor {
            Anchor::Start => x,
            Anchor::Middle => x - w / 2.0,
            Anchor::End => x - w,
        }
        .round() as i64;
        let top = (y - 4.0 * size as f64).round() as i64;
        let s = i64::from(size);
        for (n, ch) in text.chars().enumerate() {
            let glyph = font8x8::legacy::BASIC_LEGACY[if (ch as u32) < 128 { ch as usize } else { b'?' as usize }];
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        for sy in 0..s {
                            for sx in 0..s {
                                self.put(left + (n as i64 * 8 + col) * s + sx, top + row as i64 * s + sy, color);
                            }
                        }
                    }
                }
            }
        }
    }
}
