//! The claim a load writes before its first trade, and the check that follows (the protocol
//! is in the module docs of [`super`]).

use chrono::Utc;

use super::super::Result;
use crate::store::influx::{self, Claim, InfluxConfig, line_protocol};
use crate::store::{Manifest, StoreError};

/// Claims `config`'s target for the load of `manifest`, writing the claim with `write_point`
/// (the load's retrying writer), and fails if a different load has claimed it too. On failure
/// the claim just written is withdrawn, so that the other load, or this one tried again, is
/// not refused because of it.
pub(super) fn claim(
    config: &InfluxConfig,
    manifest: &Manifest,
    write_point: impl Fn(Vec<u8>) -> Result<()>,
) -> Result<()> {
    let ours = Claim {
        fingerprint: manifest.fingerprint(),
        load: manifest.describe(),
        // Now, so that the claim is within any retention: a claim dropped by the retention
        // policy would be invisible to the other load.
        time: Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX),
    };
    write_point(line_protocol::claim_line(&ours))?;
    // Our claim is acknowledged, so every read from here on sees it. Of two different loads A
    // and B, each reading after its own claim is acknowledged:
    // - A claims and reads before B claims: A sees no other claim and goes on; B's read comes
    //   after A's claim, sees it, and B backs off.
    // - Both claim, then both read: each sees the other's claim and both back off, writing no
    //   trade. Safe, and each withdraws its claim, so trying again later succeeds.
    // - Any other order is one of these two: A can miss B's claim only if B claimed after A
    //   read, which is after A claimed, so B's read sees A's claim. Two different loads
    //   therefore never both go on.
    // The shards of one load share the fingerprint, so they never back off for each other.
    let other = influx::claims(config).map(|all| {
        all.into_iter()
            .find(|claim| claim.fingerprint != ours.fingerprint)
    });
    let refusal = match other {
        Ok(None) => return Ok(()),
        Ok(Some(other)) => StoreError::Locked {
            target: config.target(),
            holder: other.to_string(),
        },
        Err(e) => e,
    };
    if let Err(e) = influx::withdraw_claim(config, &ours) {
        // The refusal is what matters; the claim left behind makes other loads back off until
        // a --replace clears it.
        tracing::warn!(
            error = %crate::telemetry::chain(&e),
            "could not withdraw this load's claim"
        );
    }
    Err(refusal.into())
}
