//! Order statistics of the bench's samples.
//!
//! Every median and percentile the bench reports goes through here, so a
//! row's median, its floor probe and the limits are read the same way.

use super::paths::Samples;

/// Where quantile `q` (0..=1) of `len` sorted values sits: the nearest
/// rank, rounding half away from zero (so the median of an even count is
/// the upper of the middle two). `len` must be at least 1.
pub fn rank(len: usize, q: f64) -> usize {
    ((len - 1) as f64 * q).round() as usize
}

/// Quantile `q` of values already sorted ascending.
pub fn quantile_sorted(sorted: &[u64], q: f64) -> u64 {
    sorted[rank(sorted.len(), q)]
}

/// Quantile `q` of `s` in any order.
pub fn quantile(s: &[u64], q: f64) -> u64 {
    let mut v = s.to_vec();
    v.sort_unstable();
    quantile_sorted(&v, q)
}

/// Median of one-way samples in ticks, as ns.
pub fn median_ns(s: &Samples, ticks_per_ns: f64) -> f64 {
    quantile(s, 0.5) as f64 / ticks_per_ns
}

/// Median of per-part figures (floor probes, memcpy runs): the upper of
/// the middle two for an even count, the same rank as [`rank`] picks.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let s = [50, 10, 40, 20, 30];
        assert_eq!(quantile(&s, 0.0), 10);
        assert_eq!(quantile(&s, 0.5), 30);
        assert_eq!(quantile(&s, 0.99), 50); // rank 3.96 rounds to 4
        assert_eq!(quantile(&s, 0.6), 30); // rank 2.4 rounds down
        assert_eq!(quantile(&s, 0.7), 40); // rank 2.8 rounds up
        assert_eq!(quantile(&[7], 0.99), 7);
    }

    #[test]
    fn medians_of_an_even_count_take_the_upper_middle() {
        assert_eq!(quantile(&[4, 1, 3, 2], 0.5), 3);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 3.0);
        assert_eq!(median(vec![2.0, 9.0, 1.0]), 2.0);
        // The two medians agree on every count, odd or even.
        for n in 1..20usize {
            let v: Vec<u64> = (0..n as u64).rev().collect();
            let f: Vec<f64> = v.iter().map(|&x| x as f64).collect();
            assert_eq!(quantile(&v, 0.5) as f64, median(f), "count {n}");
        }
    }

    #[test]
    fn median_ns_divides_by_the_clock_rate() {
        let s: Samples = vec![300, 100, 200];
        assert_eq!(median_ns(&s, 2.0), 100.0);
    }
}
