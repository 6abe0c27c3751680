//! Per-symbol starting points: price near the level each stock closed 2023 at, annualised
//! volatility and average daily share volume. Unknown symbols get deterministic values derived
//! from their name, so any symbol list works.

use crate::model::Symbol;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Price in dollars the day before the first session of a load in early 2024.
    pub start_price: f64,
    /// Annualised volatility of daily log returns (e.g. 0.25 = 25 %), everything included:
    /// overnight gaps, earnings jumps and the session's own moves.
    pub annual_vol: f64,
    /// Average daily share volume in millions. Only ratios matter: a load's trades are split
    /// so that symbols' share volumes stand in these proportions.
    pub adv_millions: f64,
}

/// Closes of 2023-12-29. For AAPL, MSFT, AMZN, GOOGL and META, calendar 2024 as Yahoo
/// Finance's daily history gives it (docs/GENERATOR.md names the copy used): the realised
/// volatility of the 252 daily log returns from the 2023-12-29 close to the 2024-12-31 close,
/// and the mean daily share volume of the 252 sessions, which sets the default load's split.
/// For the others the volatilities are rounded recent levels and only the volumes' rough order
/// matters.
const KNOWN: &[(&str, f64, f64, f64)] = &[
    ("AAPL", 192.53, 0.226, 57.11),
    ("MSFT", 376.04, 0.200, 20.59),
    ("AMZN", 151.94, 0.281, 40.97),
    ("GOOGL", 139.69, 0.280, 27.46),
    ("META", 353.96, 0.357, 14.68),
    ("NVDA", 495.22, 0.50, 45.0),
    ("TSLA", 248.48, 0.55, 95.0),
    ("JPM", 170.10, 0.20, 9.0),
    ("V", 260.35, 0.17, 7.0),
    ("WMT", 157.65, 0.17, 17.0),
    ("XOM", 99.98, 0.24, 16.0),
    ("NFLX", 486.88, 0.34, 3.5),
    ("AMD", 147.41, 0.48, 55.0),
    ("INTC", 50.25, 0.42, 50.0),
    ("KO", 58.93, 0.14, 14.0),
    ("DIS", 90.29, 0.24, 10.0),
    ("BAC", 33.67, 0.24, 38.0),
];

impl Profile {
    pub fn for_symbol(symbol: &Symbol) -> Profile {
        if let Some(&(_, start_price, annual_vol, adv_millions)) =
            KNOWN.iter().find(|(s, ..)| *s == symbol.as_str())
        {
            return Profile {
                start_price,
                annual_vol,
                adv_millions,
            };
        }
        // Spread unknown names over $20-$420, 18-48 % volatility and 2-30 M shares a day.
        let h = super::seeds::symbol_hash(symbol);
        let unit = |shift: u32| ((h >> shift) & 0xFFFF) as f64 / 65535.0;
        Profile {
            start_price: (2000.0 + 40000.0 * unit(0)).round() / 100.0,
            annual_vol: 0.18 + 0.30 * unit(16),
            adv_millions: 2.0 + 28.0 * unit(32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_symbols_get_sane_profiles() {
        let aapl = Profile::for_symbol(&Symbol::new("AAPL").unwrap());
        assert_eq!(aapl.start_price, 192.53);
        let unknown = Profile::for_symbol(&Symbol::new("ZZZZ").unwrap());
        assert_eq!(unknown, Profile::for_symbol(&Symbol::new("ZZZZ").unwrap()));
        assert!((20.0..=420.0).contains(&unknown.start_price));
        assert!((0.18..=0.48).contains(&unknown.annual_vol));
        assert!((2.0..=30.0).contains(&unknown.adv_millions));
    }
}
