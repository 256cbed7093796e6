//! The few statistics the report is made of: the median and range of some
//! rates, nearest-rank percentiles, and ratios taken turn by turn.

/// Median, lowest and highest of some figures.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Spread {
    pub(crate) fn of(mut v: Vec<f64>) -> Spread {
        if v.is_empty() {
            return Spread::default();
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        // With an even number of figures, the mean of the middle two.
        let median = if n.is_multiple_of(2) {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        } else {
            v[n / 2]
        };
        Spread {
            median,
            min: v[0],
            max: v[v.len() - 1],
        }
    }
}

/// The nearest-rank percentile `p` (0–100) of sorted samples.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // The small slack keeps `0.999 * 2000` (1998.0000000000002 in f64) at
    // rank 1998.
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One rate per pass, in the order of the passes. Every contender takes
/// one turn in each pass, so the `k`-th rates of two contenders were
/// measured side by side, a few tens of milliseconds apart.
#[derive(Debug, Clone, Default)]
pub(crate) struct Turns(pub(crate) Vec<f64>);

impl Turns {
    /// The median turn, with the slowest and the fastest.
    pub(crate) fn spread(&self) -> Spread {
        Spread::of(self.0.clone())
    }

    /// The ratios of this contender's turns to `base`'s in the same pass.
    /// The machine's speed drifts over seconds by more than two
    /// contenders differ; within a pass it barely moves, so the median of
    /// these ratios tells them apart where the ratio of two medians
    /// cannot. Passes only one of the two took part in are left out.
    pub(crate) fn ratios_to(&self, base: &Turns) -> Spread {
        Spread::of(
            self.0
                .iter()
                .zip(&base.0)
                .map(|(a, b)| a / b.max(f64::MIN_POSITIVE))
                .collect(),
        )
    }

    /// The median of [`Turns::ratios_to`].
    pub(crate) fn ratio_to(&self, base: &Turns) -> f64 {
        self.ratios_to(base).median
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_number_of_figures_is_their_middle() {
        let s = Spread::of(vec![3.0, 1.0]);
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        let s = Spread::of(vec![5.0, 1.0, 3.0]);
        assert_eq!((s.min, s.median, s.max), (1.0, 3.0, 5.0));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[5], 99.0), 5);
        assert_eq!(percentile(&[], 50.0), 0);
        let w: Vec<u64> = (1..=2000).collect();
        assert_eq!(percentile(&w, 99.9), 1998);
    }

    #[test]
    fn turns_are_divided_pass_by_pass() {
        // The machine halves its speed in the last two passes; `a` is 10 %
        // ahead of `b` in every pass.
        let b = Turns(vec![100.0, 100.0, 100.0, 50.0, 50.0]);
        let a = Turns(b.0.iter().map(|x| x * 1.1).collect());
        let r = a.ratios_to(&b);
        assert!((r.median - 1.1).abs() < 1e-9 && (r.max - r.min).abs() < 1e-9);
        // A pass that only one of them took part in counts for nothing.
        let short = Turns(vec![110.0]);
        assert_eq!(short.ratios_to(&b).median, 1.1);
    }
}
