//! Property tests over every parser input reaches: times, dates, intervals, symbols, cursors
//! and time zones. Each never panics, accepts exactly what the pattern the OpenAPI document
//! states for it matches, and reads back what its formatter writes.

use chrono_tz::Tz;
use ohlcv::calendar::SUPPORTED_YEARS;
use ohlcv::candles::{self, INTERVAL_PATTERN, Interval};
use ohlcv::model::{SYMBOL_PATTERN, Symbol, format_time};
use ohlcv::query::{
    self, DATE_PATTERN, QueryError, TIME_PATTERN, format_cursor, parse_cursor, parse_time,
};
use proptest::prelude::*;
use regex::Regex;

fn pattern(p: &str) -> Regex {
    Regex::new(p).unwrap()
}

/// Strings near a pattern as well as far from it: what the pattern generates, the same with
/// one character changed or cut, and anything at all.
fn around(p: &'static str) -> impl Strategy<Value = String> {
    let inside =
        || proptest::string::string_regex(p.trim_start_matches('^').trim_end_matches('$')).unwrap();
    prop_oneof![
        inside(),
        (inside(), any::<prop::sample::Index>(), any::<char>()).prop_map(|(s, i, c)| {
            let mut chars: Vec<char> = s.chars().collect();
            if !chars.is_empty() {
                let i = i.index(chars.len());
                chars[i] = c;
            }
            chars.into_iter().collect()
        }),
        (inside(), any::<prop::sample::Index>()).prop_map(|(s, i)| {
            let cut = i.index(s.len() + 1);
            s.get(..cut).unwrap_or(&s).to_string()
        }),
        ".{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn times_are_accepted_exactly_as_their_pattern_says(s in around(TIME_PATTERN)) {
        let shaped = pattern(TIME_PATTERN).is_match(&s);
        prop_assert_eq!(query::is_time_shaped(&s), shaped, "{:?}", s);
        for tz in [Tz::America__New_York, Tz::UTC, Tz::Asia__Kathmandu, Tz::America__Havana] {
            match parse_time(&s, tz) {
                Err(QueryError::Time(_)) => prop_assert!(!shaped, "{:?} refused", s),
                Ok(_) | Err(QueryError::NoSuchTime(_) | QueryError::Unsupported(_)) => {
                    prop_assert!(shaped, "{:?} read", s)
                }
                Err(e) => prop_assert!(false, "{:?}: {}", s, e),
            }
        }
    }

    #[test]
    fn dates_are_accepted_exactly_as_their_pattern_says(s in around(DATE_PATTERN)) {
        prop_assert_eq!(query::is_date_shaped(&s), pattern(DATE_PATTERN).is_match(&s), "{:?}", s);
    }

    #[test]
    fn formatted_times_read_back(t in any::<i64>()) {
        let text = format_time(t);
        let year: i32 = text.get(..4).and_then(|y| y.parse().ok()).unwrap_or(0);
        let read = parse_time(&text, Tz::UTC);
        if SUPPORTED_YEARS.contains(&year) {
            prop_assert_eq!(read.ok(), Some(t), "{}", text);
        } else {
            prop_assert!(read.is_err(), "{}", text);
        }
    }

    #[test]
    fn intervals_are_accepted_exactly_as_their_pattern_says(s in around(INTERVAL_PATTERN)) {
        let parsed = s.parse::<Interval>();
        prop_assert_eq!(parsed.is_ok(), pattern(INTERVAL_PATTERN).is_match(&s), "{:?}", s);
        if let Ok(i) = parsed {
            prop_assert_eq!(i.to_string(), s);
        }
    }

    #[test]
    fn formatted_intervals_read_back(n in 1..=candles::MAX_MULTIPLIER, unit in 0..6usize) {
        let text = format!("{n}{}", ["s", "m", "h", "d", "w", "mo"][unit]);
        let i: Interval = text.parse().unwrap();
        prop_assert_eq!(i.to_string(), text);
    }

    #[test]
    fn symbols_are_accepted_exactly_as_their_pattern_says(s in around(SYMBOL_PATTERN)) {
        let parsed = Symbol::new(&s);
        prop_assert_eq!(parsed.is_ok(), pattern(SYMBOL_PATTERN).is_match(&s), "{:?}", s);
        if let Ok(symbol) = parsed {
            prop_assert_eq!(symbol.to_string(), s);
        }
    }

    #[test]
    fn cursors_read_back_and_nothing_else_panics(t in any::<i64>(), s in ".{0,24}") {
        prop_assert_eq!(parse_cursor(&format_cursor(t)), Some(t));
        if let Some(c) = parse_cursor(&s) {
            prop_assert_eq!(parse_cursor(&format_cursor(c)), Some(c));
        }
    }

    #[test]
    fn time_zones_are_the_documented_names(i in any::<prop::sample::Index>(), s in "[A-Za-z/_+-]{0,24}") {
        let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
        let name = names[i.index(names.len())];
        prop_assert_eq!(candles::parse_tz(name).map(|tz| tz.name()).ok(), Some(name));
        prop_assert_eq!(candles::parse_tz(&s).is_ok(), names.contains(&s.as_str()), "{:?}", s);
    }
}
