//! Size budgets of `imgflow.toml`: `max_size_mb` (the image's compressed size) and
//! `max_growth_mb` (how much larger, compressed, than its parent image). Sizes are given
//! by the caller (the pusher knows the compressed layer sizes); a megabyte here is
//! 1,000,000 bytes, as `docker images` counts.

use super::report::{CheckKind, CheckResult};

/// Bytes in one budget megabyte.
pub const MB: u64 = 1_000_000;

/// The sizes a budget is judged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sizes {
    /// The image's compressed size in bytes (config plus compressed layers).
    pub compressed: u64,
    /// The parent image's compressed size in bytes, when the image has a parent.
    pub parent_compressed: Option<u64>,
}

/// Budget results: one per budget that is set (none when neither is).
pub fn size_budgets(
    max_size_mb: Option<u64>,
    max_growth_mb: Option<u64>,
    sizes: Sizes,
) -> Vec<CheckResult> {
    let mut results = Vec::new();
    let kind = CheckKind::SizeBudget;
    if let Some(max) = max_size_mb {
        let name = "max_size_mb";
        results.push(if sizes.compressed > max.saturating_mul(MB) {
            CheckResult::failed(
                kind,
                name,
                format!(
                    "compressed size {} is over the budget of {max} MB",
                    mb(sizes.compressed)
                ),
            )
        } else {
            CheckResult::passed(kind, name).with_message(format!(
                "compressed size {} of {max} MB",
                mb(sizes.compressed)
            ))
        });
    }
    if let Some(max) = max_growth_mb {
        let name = "max_growth_mb";
        results.push(match sizes.parent_compressed {
            None => CheckResult::skipped(kind, name, "the image has no parent image to grow from"),
            Some(parent) => {
                let growth = sizes.compressed.saturating_sub(parent);
                if growth > max.saturating_mul(MB) {
                    CheckResult::failed(
                        kind,
                        name,
                        format!(
                            "grew {} over its parent ({} -> {}), over the budget of {max} MB",
                            mb(growth),
                            mb(parent),
                            mb(sizes.compressed)
                        ),
                    )
                } else {
                    CheckResult::passed(kind, name)
                        .with_message(format!("grew {} of {max} MB", mb(growth)))
                }
            }
        });
    }
    results
}

/// `bytes` as megabytes with two decimals.
fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / MB as f64)
}
