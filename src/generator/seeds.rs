//! Stable seed derivation: every random stream is a pure function of the load's seed and the
//! stream's coordinates (symbol, date), never of the order in which streams are drawn.

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::model::Symbol;

/// SplitMix64's finaliser: a bijective mix with full avalanche.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a: stable across platforms and releases, unlike `std::hash`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub fn symbol_hash(symbol: &Symbol) -> u64 {
    fnv1a(symbol.as_str().as_bytes())
}

/// Distinguishes the independent streams drawn for one symbol.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// The daily anchor path of a whole load.
    Daily,
    /// The trades of one session, keyed by the date's days since 1970-01-01.
    Session(i64),
}

pub fn rng(seed: u64, symbol: &Symbol, stream: Stream) -> Xoshiro256PlusPlus {
    let tag = match stream {
        Stream::Daily => 0x6461_696c_7900_0000,
        Stream::Session(day) => 0x7365_7373_0000_0000 ^ day as u64,
    };
    let key = mix(mix(seed ^ 0x9e37_79b9_7f4a_7c15) ^ symbol_hash(symbol)) ^ mix(tag);
    Xoshiro256PlusPlus::seed_from_u64(mix(key))
}
