//! `report.pdf`: the report's document model laid out on A4 pages — bold
//! headings, wrapped paragraphs and lists, tables whose rows break across
//! pages under a repeated header, page numbers — and written by `krilla`
//! with DejaVu Sans embedded (subset to the glyphs used, with ToUnicode maps
//! so the text can be searched and copied). The fonts are compiled in: a
//! server needs no fonts installed. The layout runs first, so every page
//! can say "page 2 of 5"; the document is bounded by
//! [`super::report::PDF_ROWS`], so it is built in memory.

use anyhow::Context;
use krilla::{
    action::LinkAction,
    annotation::{Annotation, LinkAnnotation, Target},
    color::rgb,
    geom::{PathBuilder, Point, Rect},
    metadata::Metadata,
    page::PageSettings,
    paint::Fill,
    text::{Font, TextDirection},
    Document,
};

use super::{
    report::{Block, Rich, Span, Table},
    Meta,
};
use crate::i18n::{t, t_args};

static REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

// A4 in points, 20 mm margins; y grows downwards from the top edge.
const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN: f32 = 56.7;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
const BOTTOM: f32 = PAGE_H - MARGIN;

const TITLE: f32 = 20.0;
const HEADING: f32 = 13.0;
const BODY: f32 = 10.0;
const CELL: f32 = 8.5;
const FOOTER: f32 = 8.0;
const LEADING: f32 = 1.4;
/// DejaVu Sans' ascender (1901/2048 em), for the baseline of a line box.
const ASCENT: f32 = 0.93;
const PAD_X: f32 = 4.0;
const PAD_Y: f32 = 3.0;
const INDENT: f32 = 14.0;

type Rgb = (u8, u8, u8);
const INK: Rgb = (0x1a, 0x1a, 0x1a);
const MUTED: Rgb = (0x55, 0x55, 0x55);
const ACCENT: Rgb = (0x0b, 0x5c, 0xad);
const GRID: Rgb = (0xcc, 0xcc, 0xcc);
const HEAD_BG: Rgb = (0xf0, 0xf2, 0xf4);

/// Renders the document; `meta` gives the language, title and footer.
pub fn render(doc: &[Block], meta: &Meta<'_>) -> anyhow::Result<Vec<u8>> {
    let metrics = Metrics::new()?;
    let mut layout = Layout {
        m: &metrics,
        pages: Vec::new(),
        y: 0.0,
    };
    layout.new_page();
    for block in doc {
        layout.block(block);
    }

    let l = meta.locale;
    let regular = Font::new(REGULAR.into(), 0).context("embedded regular font")?;
    let bold = Font::new(BOLD.into(), 0).context("embedded bold font")?;
    let mut document = Document::new();
    document.set_metadata(
        Metadata::new()
            .title(t(l, "export.report.title"))
            .authors(vec![meta.company.name.clone()])
            .language(l.as_str().to_string())
            .creator("privacy-portal".to_string()),
    );
    let total = layout.pages.len();
    for (i, mut ops) in layout.pages.into_iter().enumerate() {
        let label = t_args(
            l,
            "export.report.page",
            &[
                ("page", &(i + 1).to_string()),
                ("pages", &total.to_string()),
            ],
        );
        let y = PAGE_H - MARGIN / 2.0;
        ops.push(Op::Text {
            x: MARGIN,
            y,
            size: FOOTER,
            bold: false,
            color: MUTED,
            text: format!("{} · {}", meta.company.name, meta.reference),
        });
        ops.push(Op::Text {
            x: PAGE_W - MARGIN - metrics.width(&label, false, FOOTER),
            y,
            size: FOOTER,
            bold: false,
            color: MUTED,
            text: label,
        });

        let settings = PageSettings::from_wh(PAGE_W, PAGE_H).context("A4 page")?;
        let mut page = document.start_page_with(settings);
        let mut links = Vec::new();
        let mut surface = page.surface();
        for op in ops {
            match op {
                Op::Text {
                    x,
                    y,
                    size,
                    bold: b,
                    color,
                    text,
                } => {
                    surface.set_fill(Some(fill(color)));
                    let font = if b { bold.clone() } else { regular.clone() };
                    surface.draw_text(
                        Point::from_xy(x, y),
                        font,
                        size,
                        &text,
                        false,
                        TextDirection::Auto,
                    );
                }
                Op::Rect { x, y, w, h, color } => {
                    let mut pb = PathBuilder::new();
                    if let Some(rect) = Rect::from_xywh(x, y, w, h) {
                        pb.push_rect(rect);
                    }
                    if let Some(path) = pb.finish() {
                        surface.set_fill(Some(fill(color)));
                        surface.draw_path(&path);
                    }
                }
                Op::Link { x, y, w, h, url } => {
                    if let Some(rect) = Rect::from_xywh(x, y, w, h) {
                        links.push((rect, url));
                    }
                }
            }
        }
        surface.finish();
        for (rect, url) in links {
            page.add_annotation(Annotation::new_link(
                LinkAnnotation::new(rect, Target::Action(LinkAction::new(url.clone()).into())),
                Some(url),
            ));
        }
        page.finish();
    }
    document
        .finish()
        .map_err(|e| anyhow::anyhow!("writing report.pdf: {e:?}"))
}

fn fill((r, g, b): Rgb) -> Fill {
    Fill {
        paint: rgb::Color::new(r, g, b).into(),
        ..Fill::default()
    }
}

/// Advance widths from the embedded fonts, to wrap lines.
struct Metrics {
    regular: ttf_parser::Face<'static>,
    bold: ttf_parser::Face<'static>,
}

impl Metrics {
    fn new() -> anyhow::Result<Metrics> {
        Ok(Metrics {
            regular: ttf_parser::Face::parse(REGULAR, 0).context("embedded regular font")?,
            bold: ttf_parser::Face::parse(BOLD, 0).context("embedded bold font")?,
        })
    }

    fn width(&self, s: &str, bold: bool, size: f32) -> f32 {
        let face = if bold { &self.bold } else { &self.regular };
        let units: u32 = s
            .chars()
            .map(|c| {
                // A character the font lacks is drawn as its .notdef box.
                let g = face.glyph_index(c).unwrap_or(ttf_parser::GlyphId(0));
                u32::from(face.glyph_hor_advance(g).unwrap_or(0))
            })
            .sum();
        units as f32 * size / f32::from(face.units_per_em())
    }

    /// The widest hard line of `rich` set without wrapping.
    fn natural_width(&self, rich: &[Span], size: f32) -> f32 {
        let mut widest: f32 = 0.0;
        let mut line = 0.0;
        for span in rich {
            match span {
                Span::Break => {
                    widest = widest.max(line);
                    line = 0.0;
                }
                Span::Text(s) | Span::Strong(s) | Span::Link(s) => {
                    let bold = matches!(span, Span::Strong(_));
                    for (i, part) in s.split('\n').enumerate() {
                        if i > 0 {
                            widest = widest.max(line);
                            line = 0.0;
                        }
                        line += self.width(&clean(part), bold, size);
                    }
                }
            }
        }
        widest.max(line)
    }

    /// Breaks `rich` into lines no wider than `max`, at spaces, and inside
    /// a word only when the word alone is wider than `max`.
    fn wrap(&self, rich: &[Span], max: f32, size: f32) -> Vec<Line> {
        let mut w = Wrapper {
            m: self,
            max,
            size,
            lines: Vec::new(),
            line: Vec::new(),
            x: 0.0,
        };
        for span in rich {
            let (s, bold, link) = match span {
                Span::Break => {
                    w.newline();
                    continue;
                }
                Span::Text(s) => (s, false, None),
                Span::Strong(s) => (s, true, None),
                Span::Link(s) => (s, false, Some(s.as_str())),
            };
            for (i, hard) in s.split('\n').enumerate() {
                if i > 0 {
                    w.newline();
                }
                let hard = clean(hard);
                let mut space = false;
                for (j, word) in hard.split(' ').enumerate() {
                    space |= j > 0;
                    if !word.is_empty() {
                        w.word(word, bold, link, space);
                        space = false;
                    }
                }
                if space {
                    // Trailing space: kept for the next span on this line.
                    w.word("", bold, link, true);
                }
            }
        }
        if !w.line.is_empty() || w.lines.is_empty() {
            w.newline();
        }
        w.lines
    }
}

/// Control characters (tabs, carriage returns) would show as boxes.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[derive(Debug)]
struct Run {
    x: f32,
    w: f32,
    bold: bool,
    link: Option<String>,
    text: String,
}

type Line = Vec<Run>;

struct Wrapper<'m> {
    m: &'m Metrics,
    max: f32,
    size: f32,
    lines: Vec<Line>,
    line: Line,
    x: f32,
}

impl Wrapper<'_> {
    fn newline(&mut self) {
        self.lines.push(std::mem::take(&mut self.line));
        self.x = 0.0;
    }

    fn push(&mut self, s: &str, bold: bool, link: Option<&str>) {
        let w = self.m.width(s, bold, self.size);
        match self.line.last_mut() {
            Some(run) if run.bold == bold && run.link.as_deref() == link => {
                run.text.push_str(s);
                run.w += w;
            }
            _ => self.line.push(Run {
                x: self.x,
                w,
                bold,
                link: link.map(str::to_string),
                text: s.to_string(),
            }),
        }
        self.x += w;
    }

    fn word(&mut self, word: &str, bold: bool, link: Option<&str>, space: bool) {
        let space = space && !self.line.is_empty();
        let sw = if space {
            self.m.width(" ", bold, self.size)
        } else {
            0.0
        };
        let ww = self.m.width(word, bold, self.size);
        if self.x + sw + ww <= self.max {
            if space {
                self.push(" ", bold, link);
            }
            self.push(word, bold, link);
            return;
        }
        if !self.line.is_empty() {
            self.newline();
        }
        if ww <= self.max {
            self.push(word, bold, link);
            return;
        }
        // Longer than a whole line (a URL, a JSON value): break anywhere.
        let mut buf = [0u8; 4];
        for c in word.chars() {
            let cw = self.m.width(c.encode_utf8(&mut buf), bold, self.size);
            if self.x + cw > self.max && !self.line.is_empty() {
                self.newline();
            }
            self.push(c.encode_utf8(&mut buf), bold, link);
        }
    }
}

enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        bold: bool,
        color: Rgb,
        text: String,
    },
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        color: Rgb,
    },
    Link {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        url: String,
    },
}

struct Layout<'m> {
    m: &'m Metrics,
    pages: Vec<Vec<Op>>,
    /// The top of the next line on the current page.
    y: f32,
}

impl Layout<'_> {
    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = MARGIN;
    }

    fn ops(&mut self) -> &mut Vec<Op> {
        self.pages.last_mut().expect("a page")
    }

    fn at_top(&self) -> bool {
        self.y <= MARGIN
    }

    /// Starts a new page unless `h` more points fit on this one.
    fn ensure(&mut self, h: f32) {
        if self.y + h > BOTTOM && !self.at_top() {
            self.new_page();
        }
    }

    fn draw_line(&mut self, line: &Line, x: f32, top: f32, size: f32, color: Rgb) {
        let baseline = top + size * ASCENT;
        for run in line {
            if run.text.trim().is_empty() {
                continue;
            }
            let (color, link) = match &run.link {
                Some(url) => (ACCENT, Some(url.clone())),
                None => (color, None),
            };
            self.ops().push(Op::Text {
                x: x + run.x,
                y: baseline,
                size,
                bold: run.bold,
                color,
                text: run.text.clone(),
            });
            if let Some(url) = link {
                self.ops().push(Op::Link {
                    x: x + run.x,
                    y: top,
                    w: run.w,
                    h: size * LEADING,
                    url,
                });
            }
        }
    }

    /// Wrapped lines at `x`, breaking pages between lines.
    fn lines(&mut self, lines: &[Line], x: f32, size: f32, color: Rgb) {
        let lh = size * LEADING;
        for line in lines {
            self.ensure(lh);
            let top = self.y;
            self.draw_line(line, x, top, size, color);
            self.y += lh;
        }
    }

    fn block(&mut self, block: &Block) {
        match block {
            Block::Title(s) => {
                let lines = self.m.wrap(&[Span::Strong(s.clone())], CONTENT_W, TITLE);
                self.lines(&lines, MARGIN, TITLE, INK);
                self.y += 6.0;
            }
            Block::Heading(s) => {
                let lines = self.m.wrap(&[Span::Strong(s.clone())], CONTENT_W, HEADING);
                let lh = HEADING * LEADING;
                // Kept with at least two lines of what follows.
                self.ensure(12.0 + lines.len() as f32 * lh + 4.0 + 3.0 * BODY * LEADING);
                if !self.at_top() {
                    self.y += 12.0;
                }
                self.lines(&lines, MARGIN, HEADING, INK);
                let y = self.y;
                self.ops().push(Op::Rect {
                    x: MARGIN,
                    y,
                    w: CONTENT_W,
                    h: 1.5,
                    color: ACCENT,
                });
                self.y += 6.0;
            }
            Block::Paragraph(rich) => {
                let lines = self.m.wrap(rich, CONTENT_W, BODY);
                // No single first line at the foot of a page.
                self.ensure(lines.len().min(2) as f32 * BODY * LEADING);
                self.lines(&lines, MARGIN, BODY, INK);
                self.y += 4.0;
            }
            Block::List(items) => {
                for item in items {
                    let lines = self.m.wrap(item, CONTENT_W - INDENT, BODY);
                    // An item stays on one page when it can.
                    self.ensure(lines.len() as f32 * BODY * LEADING);
                    let top = self.y;
                    self.ops().push(Op::Text {
                        x: MARGIN + 3.0,
                        y: top + BODY * ASCENT,
                        size: BODY,
                        bold: false,
                        color: INK,
                        text: "•".into(),
                    });
                    self.lines(&lines, MARGIN + INDENT, BODY, INK);
                    self.y += 2.0;
                }
                self.y += 4.0;
            }
            Block::Table(table) => self.table(table),
        }
    }

    fn column_widths(&self, header: &[Rich], rows: &[Vec<Rich>]) -> Vec<f32> {
        let n = header.len();
        let mut natural = vec![0.0f32; n];
        for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
            for (i, c) in row.iter().enumerate().take(n) {
                natural[i] = natural[i].max(self.m.natural_width(c, CELL) + 2.0 * PAD_X + 1.0);
            }
        }
        let total: f32 = natural.iter().sum();
        if total <= CONTENT_W {
            // Full width, like the HTML table.
            return natural.iter().map(|w| w * CONTENT_W / total).collect();
        }
        // Narrow columns keep their width; the wide ones share the rest.
        let mut fixed = vec![false; n];
        let mut remaining = CONTENT_W;
        let mut open = n;
        loop {
            let share = remaining / open as f32;
            let mut changed = false;
            for i in 0..n {
                if !fixed[i] && natural[i] <= share {
                    fixed[i] = true;
                    remaining -= natural[i];
                    open -= 1;
                    changed = true;
                }
            }
            if !changed || open == 0 {
                break;
            }
        }
        let share = remaining / open.max(1) as f32;
        (0..n)
            .map(|i| if fixed[i] { natural[i] } else { share })
            .collect()
    }

    fn table(&mut self, table: &Table) {
        let header: Vec<Rich> = table
            .header
            .iter()
            .map(|h| vec![Span::Strong(h.clone())])
            .collect();
        let widths = self.column_widths(&header, &table.rows);
        let wrap = |m: &Metrics, cells: &[Rich], widths: &[f32]| -> Vec<Vec<Line>> {
            cells
                .iter()
                .zip(widths)
                .map(|(c, w)| m.wrap(c, w - 2.0 * PAD_X, CELL))
                .collect()
        };
        let head = Row {
            cells: wrap(self.m, &header, &widths),
            widths: widths.clone(),
        };
        // The header with at least one row under it.
        self.ensure(head.height() + CELL * LEADING + 2.0 * PAD_Y);
        self.row(&head, None);
        if table.rows.is_empty() {
            if let Some(none) = &table.empty {
                let full = [CONTENT_W.min(widths.iter().sum())];
                let row = Row {
                    cells: wrap(self.m, &[vec![Span::Text(none.clone())]], &full),
                    widths: full.to_vec(),
                };
                self.row(&row, Some(&head));
            }
        }
        for cells in &table.rows {
            let row = Row {
                cells: wrap(self.m, cells, &widths),
                widths: widths.clone(),
            };
            self.row(&row, Some(&head));
        }
        self.y += 10.0;
    }

    /// One table row (`repeat` is `None` for the header itself); on a new
    /// page the header comes again. A row taller than a page is split.
    fn row(&mut self, row: &Row, repeat: Option<&Row>) {
        let lh = CELL * LEADING;
        let n = row.lines();
        let head_h = repeat.map_or(0.0, Row::height);
        if self.y + row.height() > BOTTOM && row.height() <= BOTTOM - MARGIN - head_h {
            self.page_break(repeat);
        }
        let mut k = 0;
        let mut fresh = self.at_top();
        while k < n {
            let room = ((BOTTOM - self.y - 2.0 * PAD_Y) / lh).floor();
            if room < 1.0 && !fresh {
                self.page_break(repeat);
                fresh = true;
                continue;
            }
            // At least one line per page, whatever the room.
            let take = (room.max(1.0) as usize).min(n - k);
            self.row_slice(row, k, k + take, repeat.is_none());
            k += take;
            if k < n {
                self.page_break(repeat);
                fresh = true;
            }
        }
    }

    fn page_break(&mut self, repeat: Option<&Row>) {
        self.new_page();
        if let Some(head) = repeat {
            self.row_slice(head, 0, head.lines(), true);
        }
    }

    fn row_slice(&mut self, row: &Row, from: usize, to: usize, header: bool) {
        let lh = CELL * LEADING;
        let h = (to - from) as f32 * lh + 2.0 * PAD_Y;
        let top = self.y;
        let width: f32 = row.widths.iter().sum();
        if header {
            self.ops().push(Op::Rect {
                x: MARGIN,
                y: top,
                w: width,
                h,
                color: HEAD_BG,
            });
        }
        let mut x = MARGIN;
        for (lines, w) in row.cells.iter().zip(&row.widths) {
            for (j, line) in lines.iter().enumerate().take(to).skip(from) {
                let line_top = top + PAD_Y + (j - from) as f32 * lh;
                self.draw_line(line, x + PAD_X, line_top, CELL, INK);
            }
            self.ops().push(Op::Rect {
                x,
                y: top,
                w: 0.5,
                h,
                color: GRID,
            });
            x += w;
        }
        for (y, x0, w) in [(top, MARGIN, width), (top + h, MARGIN, width)] {
            self.ops().push(Op::Rect {
                x: x0,
                y: y - 0.25,
                w,
                h: 0.5,
                color: GRID,
            });
        }
        self.ops().push(Op::Rect {
            x: MARGIN + width - 0.5,
            y: top,
            w: 0.5,
            h,
            color: GRID,
        });
        self.y = top + h;
    }
}

struct Row {
    cells: Vec<Vec<Line>>,
    widths: Vec<f32>,
}

impl Row {
    fn lines(&self) -> usize {
        self.cells.iter().map(Vec::len).max().unwrap_or(0).max(1)
    }

    fn height(&self) -> f32 {
        self.lines() as f32 * CELL * LEADING + 2.0 * PAD_Y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_wraps_within_the_width_and_long_words_break() {
        let m = Metrics::new().unwrap();
        let rich = vec![
            Span::Strong("Bold start".into()),
            Span::Text(" and a long sentence that needs more than one line to fit in this narrow column of text".into()),
            Span::Break,
            Span::Text("https://example.org/".repeat(10)),
        ];
        let lines = m.wrap(&rich, 120.0, BODY);
        assert!(lines.len() > 4, "{lines:?}");
        for line in &lines {
            let w: f32 = line.iter().map(|r| r.w).sum();
            assert!(w <= 120.0 + 0.01, "{line:?}");
        }
        assert!(lines[0][0].bold && lines[0][0].text == "Bold start");
        let text: String = lines
            .iter()
            .flat_map(|l| l.iter().map(|r| r.text.as_str()))
            .collect::<Vec<_>>()
            .join("");
        assert!(text.contains("Bold start and a long"), "{text}");
        assert_eq!(m.wrap(&[], 100.0, BODY).len(), 1);
    }
}
