//! The conformance cases, one module per area.

pub mod chunked;
pub mod discovery;
pub mod management;
pub mod manifests;
pub mod negotiation;
pub mod pull;
pub mod push;
pub mod referrers;
pub mod sessions;
pub mod tagging;

use crate::ctx::{Ctx, Recorder};
use crate::report::Category;

/// Run every case of `category`.
pub async fn run_category(ctx: &Ctx, rec: &mut Recorder, category: Category) {
    match category {
        Category::Pull => {
            pull::run(ctx, rec).await;
            negotiation::run(ctx, rec).await;
        }
        Category::Push => {
            push::run(ctx, rec).await;
            sessions::run(ctx, rec).await;
            chunked::run(ctx, rec).await;
            manifests::run(ctx, rec).await;
            tagging::run(ctx, rec).await;
        }
        Category::Discovery => {
            discovery::run(ctx, rec).await;
            referrers::run(ctx, rec).await;
        }
        Category::Management => management::run(ctx, rec).await,
    }
}
