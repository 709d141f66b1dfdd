//! What a lane is made of (rows of shapes) and the helpers that draw into one.

use espsim_emulator::events::Direction;

use super::text::seq_list;
use super::{LANES, MAX_MARKS_PER_LANE};

/// One drawn thing, in absolute SVG coordinates.
#[derive(Debug, Clone)]
pub(super) struct Shape {
    /// `bar`, `tick`, `dot`, `text` or `gap` (a bracket with a label).
    pub(super) kind: &'static str,
    pub(super) class: String,
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) w: f64,
    pub(super) h: f64,
    /// Hover text (`<title>`; none when empty).
    pub(super) title: String,
    /// The text of a `text` shape.
    pub(super) label: String,
    /// The events it shows, as `seq` numbers separated by spaces (`data-seq`).
    pub(super) seqs: String,
}

/// One swimlane.
#[derive(Debug, Clone)]
pub(super) struct Row {
    /// `conn-row`, `fault-row`, `dns-row`, `check-row`, `device-row` or `gap-row`.
    pub(super) class: &'static str,
    pub(super) label: String,
    /// Hover text of the label.
    pub(super) hint: String,
    /// The connection, for connection rows.
    pub(super) conn: Option<u64>,
    pub(super) y: f64,
    pub(super) h: f64,
    pub(super) shapes: Vec<Shape>,
}

pub(super) fn new_row(
    class: &'static str,
    label: impl Into<String>,
    hint: impl Into<String>,
) -> Row {
    Row {
        class,
        label: label.into(),
        hint: hint.into(),
        conn: None,
        y: 0.0,
        h: LANES.height,
        shapes: Vec::new(),
    }
}

/// A WebSocket frame's tick on its connection row: app → device in the upper half, device → app
/// in the lower; an app `ping` (a message or a ping frame) is also marked as a heartbeat (`hb`).
/// `kind` is the CSS family (`msg` or `ctl`); `title` gets the arrow's words.
pub(super) fn tick(
    kind: &str,
    direction: Direction,
    ping: bool,
    x: f64,
    mid: f64,
    title: impl FnOnce(&str) -> String,
) -> Shape {
    let (side, y, arrow) = match direction {
        Direction::In => ("in", 2.0, "app → device"),
        Direction::Out => ("out", mid, "device → app"),
    };
    let heartbeat = if direction == Direction::In && ping {
        " hb"
    } else {
        ""
    };
    shape(
        "tick",
        format!("{kind} {kind}-{side}{heartbeat}"),
        x,
        y,
        0.0,
        mid - 2.0,
    )
    .title(title(arrow))
}

/// A shape in lane-relative coordinates (y from the lane's top; [`rows`](super::lanes::rows)
/// adds the lane's y).
pub(super) fn shape(
    kind: &'static str,
    class: impl Into<String>,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
) -> Shape {
    Shape {
        kind,
        class: class.into(),
        x,
        y,
        w,
        h,
        title: String::new(),
        label: String::new(),
        seqs: String::new(),
    }
}

impl Shape {
    pub(super) fn title(mut self, t: impl Into<String>) -> Shape {
        self.title = t.into();
        self
    }

    pub(super) fn label(mut self, t: impl Into<String>) -> Shape {
        self.label = t.into();
        self
    }

    pub(super) fn seqs(mut self, seqs: impl IntoIterator<Item = u64>) -> Shape {
        self.seqs = seq_list(seqs);
        self
    }
}

/// Adds `s` unless the lane already holds [`MAX_MARKS_PER_LANE`] marks; counts what was left out.
pub(super) fn push_mark(row: &mut Row, s: Shape, left_out: &mut usize) {
    if row.shapes.len() < MAX_MARKS_PER_LANE {
        row.shapes.push(s);
    } else {
        *left_out += 1;
    }
}

pub(super) fn note_left_out(row: &mut Row, left_out: usize) {
    if left_out > 0 {
        row.label += &format!(" (+{left_out} not drawn)");
    }
}
