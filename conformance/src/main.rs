//! `conformance`: run the OCI distribution-spec conformance workflows against a registry.
//!
//! Exit status: 0 when no MUST case failed (with `--strict`: no case at all), 1 otherwise,
//! 2 on usage or connection errors.

use clap::Parser;
use conformance::known::KNOWN_DISTRIBUTION_DIFFERENCES;
use conformance::report::Category;
use conformance::{run, Options, RunError};
use std::path::PathBuf;
use std::process::ExitCode;

/// Run OCI distribution-spec v1.1 conformance workflows against a registry.
#[derive(Debug, Parser)]
#[command(name = "conformance", version)]
struct Cli {
    /// Registry base URL, e.g. https://127.0.0.1:5000
    #[arg(long, required_unless_present = "list_known_differences")]
    url: Option<String>,
    /// PEM file of the CA that signed the registry's certificate
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Namespace prefix of the run's repositories (a random suffix is appended)
    #[arg(long, value_name = "NAME", default_value = "conformance")]
    namespace: String,
    /// Only run these categories
    #[arg(long, value_delimiter = ',', value_parser = parse_category)]
    only: Vec<Category>,
    /// Print a JSON report (array of {id, category, result, detail}) instead of lines
    #[arg(long)]
    json: bool,
    /// Repository to mount blobs from in the cross-repository mount cases
    #[arg(long, value_name = "NAME")]
    cross_mount_from: Option<String>,
    /// HTTP basic credentials, USER:PASSWORD
    #[arg(
        long,
        value_name = "USER:PASSWORD",
        env = "CONFORMANCE_BASIC_AUTH",
        hide_env_values = true
    )]
    basic_auth: Option<String>,
    /// Speak HTTP/1.1 only (by default HTTP/2 is used when the registry offers it)
    #[arg(long)]
    http1: bool,
    /// Fail the run (exit 1) on SHOULD and MAY failures too, not only on MUST failures
    #[arg(long)]
    strict: bool,
    /// Leave what the run pushed in the registry (by default it is deleted at the end)
    #[arg(long)]
    keep: bool,
    /// Print the cases CNCF Distribution 2.8 is known not to pass (id, fail or skip, reason), and exit
    #[arg(long)]
    list_known_differences: bool,
}

fn parse_category(s: &str) -> Result<Category, String> {
    s.parse()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.list_known_differences {
        for k in KNOWN_DISTRIBUTION_DIFFERENCES {
            println!("{}\t{}\t{}", k.id, k.result, k.reason);
        }
        return ExitCode::SUCCESS;
    }
    let basic_auth = match cli.basic_auth.as_deref().map(|s| s.split_once(':')) {
        None => None,
        Some(Some((u, p))) => Some((u.to_string(), p.to_string())),
        Some(None) => {
            eprintln!("conformance: --basic-auth must be USER:PASSWORD");
            return ExitCode::from(2);
        }
    };
    let opts = Options {
        url: cli.url.unwrap_or_default(),
        cacert: cli.cacert,
        namespace: cli.namespace,
        only: cli.only,
        cross_mount_from: cli.cross_mount_from,
        basic_auth,
        http1: cli.http1,
        keep: cli.keep,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("conformance: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(&opts)) {
        Ok(report) => {
            if cli.json {
                println!("{}", report.json());
            } else {
                print!("{}", report.human());
            }
            if let Some(t) = &report.teardown {
                eprintln!("conformance: {t}");
            }
            if report.succeeded(cli.strict) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e @ (RunError::Usage(_) | RunError::Connect(_))) => {
            eprintln!("conformance: {e}");
            ExitCode::from(2)
        }
    }
}
