//! Per-symbol starting points: price near the level each stock closed 2023 at, annualised
//! volatility and relative trading activity. Unknown symbols get deterministic values derived
//! from their name, so any symbol list works.

use crate::model::Symbol;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Price in dollars the day before the first session of a load in early 2024.
    pub start_price: f64,
    /// Annualised volatility of log returns (e.g. 0.25 = 25 %).
    pub annual_vol: f64,
    /// Relative number of trades per session; 1.0 is an AAPL-like name.
    pub activity: f64,
}

/// Approximate closes of 2023-12-29, rounded; volatilities are rounded realised 2023-2024
/// figures. Good enough to make the synthetic tape look like the names it carries.
const KNOWN: &[(&str, f64, f64, f64)] = &[
    ("AAPL", 192.53, 0.22, 1.00),
    ("MSFT", 376.04, 0.24, 0.75),
    ("AMZN", 151.94, 0.32, 0.90),
    ("GOOGL", 139.69, 0.30, 0.80),
    ("META", 353.96, 0.38, 0.80),
    ("NVDA", 495.22, 0.50, 1.60),
    ("TSLA", 248.48, 0.55, 1.50),
    ("JPM", 170.10, 0.20, 0.45),
    ("V", 260.35, 0.17, 0.35),
    ("WMT", 157.65, 0.17, 0.40),
    ("XOM", 99.98, 0.24, 0.45),
    ("NFLX", 486.88, 0.34, 0.40),
    ("AMD", 147.41, 0.48, 1.10),
    ("INTC", 50.25, 0.42, 0.70),
    ("KO", 58.93, 0.14, 0.35),
    ("DIS", 90.29, 0.24, 0.40),
    ("BAC", 33.67, 0.24, 0.60),
];

impl Profile {
    pub fn for_symbol(symbol: &Symbol) -> Profile {
        if let Some(&(_, start_price, annual_vol, activity)) =
            KNOWN.iter().find(|(s, ..)| *s == symbol.as_str())
        {
            return Profile {
                start_price,
                annual_vol,
                activity,
            };
        }
        // Spread unknown names over $20-$420, 18-48 % volatility and 0.3-1.0 activity.
        let h = super::seeds::symbol_hash(symbol);
        let unit = |shift: u32| ((h >> shift) & 0xFFFF) as f64 / 65535.0;
        Profile {
            start_price: (2000.0 + 40000.0 * unit(0)).round() / 100.0,
            annual_vol: 0.18 + 0.30 * unit(16),
            activity: 0.3 + 0.7 * unit(32),
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
    }
}
