//! The HTML report's geometry: time → x and lane → y, in SVG user units. Pure arithmetic, kept
//! apart from the markup so it can be tested on its own.

/// Maps run time (ms) onto the timeline's x axis: `left` is x at 0 ms, `left + width` at
/// `span_ms`; later times are clamped to the right edge (nothing is drawn outside the plot).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TimeScale {
    span_ms: u64,
    left: f64,
    width: f64,
}

/// The shortest drawn bar, so that a 0-ms interval is still visible and hoverable.
pub(crate) const MIN_BAR: f64 = 2.0;

/// Tick steps (ms) the axis chooses from: 1-2-5 over each power of ten, 1 ms to 1000 s.
const STEPS_MS: [u64; 19] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
    200_000, 500_000, 1_000_000,
];

impl TimeScale {
    /// A scale showing `0..=span_ms` (at least 1 ms) over `width` units starting at `left`.
    pub(crate) fn new(span_ms: u64, left: f64, width: f64) -> TimeScale {
        TimeScale {
            span_ms: span_ms.max(1),
            left,
            width: width.max(1.0),
        }
    }

    /// The x of time `ms`, rounded to 0.1 unit (smaller files, no visible difference).
    pub(crate) fn x(&self, ms: u64) -> f64 {
        let fraction = ms.min(self.span_ms) as f64 / self.span_ms as f64;
        round(self.left + self.width * fraction)
    }

    /// The width of the interval `from..to` (reversed intervals count as empty), at least
    /// [`MIN_BAR`].
    pub(crate) fn width(&self, from_ms: u64, to_ms: u64) -> f64 {
        round((self.x(to_ms.max(from_ms)) - self.x(from_ms)).max(MIN_BAR))
    }

    /// The right edge of the plot.
    pub(crate) fn right(&self) -> f64 {
        round(self.left + self.width)
    }

    /// Axis ticks counted from `origin_ms` (the run clock's zero): the smallest 1-2-5 step
    /// giving at most `max` intervals over the span, as (x, ms relative to the origin) pairs,
    /// negative before it. An origin past the span is taken as the span's end.
    pub(crate) fn ticks_from(&self, origin_ms: u64, max: u64) -> Vec<(f64, i64)> {
        let max = max.max(1);
        let step = STEPS_MS
            .iter()
            .copied()
            .find(|s| self.span_ms.div_ceil(*s) <= max)
            .unwrap_or(self.span_ms);
        let origin = origin_ms.min(self.span_ms);
        let before = (1..=origin / step).rev().map(|i| origin - i * step);
        let after = (0..=(self.span_ms - origin) / step).map(|i| origin + i * step);
        before
            .chain(after)
            .map(|ms| (self.x(ms), signed(ms) - signed(origin)))
            .collect()
    }

    /// The x of `ms` as a bucket index of `px` units from the plot's left edge (used to
    /// aggregate marks too dense to draw one by one).
    pub(crate) fn bucket(&self, ms: u64, px: f64) -> u64 {
        ((self.x(ms) - self.left) / px.max(0.1)).floor().max(0.0) as u64
    }

    /// The x where bucket `index` of `px` units begins.
    pub(crate) fn bucket_x(&self, index: u64, px: f64) -> f64 {
        round(self.left + index as f64 * px)
    }
}

fn signed(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Stacks lanes (swimlanes) from `top` down: each `height` tall, `gap` apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Lanes {
    /// y of the first lane's top edge.
    pub(crate) top: f64,
    /// Each lane's height.
    pub(crate) height: f64,
    /// Space between lanes.
    pub(crate) gap: f64,
}

impl Lanes {
    /// The top edge of lane `index` (0-based).
    pub(crate) fn y(&self, index: usize) -> f64 {
        round(self.top + index as f64 * (self.height + self.gap))
    }

    /// The height everything down to the end of `count` lanes needs (with one gap below).
    pub(crate) fn total(&self, count: usize) -> f64 {
        self.y(count)
    }
}

/// Rounds to one decimal.
fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_maps_linearly_onto_the_plot_and_clamps_at_the_end() {
        let s = TimeScale::new(10_000, 100.0, 800.0);
        assert_eq!(s.x(0), 100.0);
        assert_eq!(s.x(5_000), 500.0);
        assert_eq!(s.x(10_000), 900.0);
        assert_eq!(s.x(25_000), 900.0, "later than the span: clamped");
        assert_eq!(s.x(1), 100.1, "rounded to 0.1");
        assert_eq!(s.right(), 900.0);
        assert!((0..10_000).step_by(7).all(|t| s.x(t) <= s.x(t + 7)));
    }

    #[test]
    fn intervals_have_a_visible_minimum_width_and_reversed_ones_are_empty() {
        let s = TimeScale::new(10_000, 0.0, 1_000.0);
        assert_eq!(s.width(1_000, 3_000), 200.0);
        assert_eq!(s.width(1_000, 1_000), MIN_BAR);
        assert_eq!(s.width(3_000, 1_000), MIN_BAR);
    }

    #[test]
    fn a_zero_span_does_not_divide_by_zero() {
        let s = TimeScale::new(0, 10.0, 100.0);
        assert_eq!(s.x(0), 10.0);
        assert_eq!(s.x(5), 110.0);
        assert!(!s.ticks_from(0, 10).is_empty());
    }

    #[test]
    fn ticks_use_the_smallest_1_2_5_step_that_fits() {
        let s = TimeScale::new(10_000, 0.0, 1_000.0);
        let t = s.ticks_from(0, 10);
        assert_eq!(t.len(), 11, "1 s steps over 10 s: {t:?}");
        assert_eq!(t[1], (100.0, 1_000));
        let t = s.ticks_from(0, 4);
        assert_eq!(
            t.iter().map(|(_, ms)| *ms).collect::<Vec<_>>(),
            [0, 5_000, 10_000]
        );
        let s = TimeScale::new(7_300, 0.0, 730.0);
        let t = s.ticks_from(0, 12);
        assert_eq!(t.last().map(|(_, ms)| *ms), Some(7_000));
        assert!(t.iter().all(|(x, ms)| *x == *ms as f64 / 10.0));
    }

    #[test]
    fn ticks_count_from_the_run_clock_origin() {
        let s = TimeScale::new(10_000, 0.0, 1_000.0);
        let t = s.ticks_from(2_500, 10);
        assert_eq!(
            t.iter().map(|(_, ms)| *ms).collect::<Vec<_>>(),
            [
                -2_000, -1_000, 0, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000
            ]
        );
        assert_eq!(t[2], (250.0, 0), "zero is drawn at the origin");
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
        let late = s.ticks_from(50_000, 10);
        assert_eq!(
            late.last(),
            Some(&(1_000.0, 0)),
            "origin clamped to the end"
        );
    }

    #[test]
    fn buckets_group_times_by_their_x() {
        let s = TimeScale::new(10_000, 100.0, 1_000.0);
        assert_eq!(s.bucket(0, 2.0), 0);
        assert_eq!(s.bucket(19, 2.0), 0, "x 101.9");
        assert_eq!(s.bucket(20, 2.0), 1);
        assert_eq!(s.bucket(10_000, 2.0), 500);
        assert_eq!(s.bucket_x(1, 2.0), 102.0);
    }

    #[test]
    fn lanes_stack_downwards_without_overlap() {
        let l = Lanes {
            top: 30.0,
            height: 20.0,
            gap: 4.0,
        };
        assert_eq!(l.y(0), 30.0);
        assert_eq!(l.y(1), 54.0);
        assert_eq!(l.total(3), 102.0);
        assert!((0..50).all(|i| l.y(i) + l.height < l.y(i + 1)));
    }
}
