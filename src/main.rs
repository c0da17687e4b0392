use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "miroir", version, about = "One Meilisearch API in front of many Meilisearch nodes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a local cluster: Meilisearch processes (MEILI_BIN or `meilisearch` on PATH) with
    /// their data under ./.miroir-dev, and Miroir in front of them. Ctrl-C stops everything.
    Dev(miroir::commands::dev::DevArgs),
    /// Serve the Meilisearch API from a config file (real deployments).
    Serve {
        /// The YAML config file (see config/example.yaml).
        #[arg(long, short)]
        config: std::path::PathBuf,
    },
    /// Print every CustomResourceDefinition (YAML, one document per CRD).
    Crd,
    /// Run on Kubernetes: serve the proxy and reconcile Miroir's custom resources into it.
    Operator(miroir::controlplane::cli::OperatorArgs),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MIROIR_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).init();
}

fn main() {
    init_tracing();
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = rt.block_on(async {
        match cli.command {
            Command::Dev(args) => miroir::commands::dev::run(args).await,
            Command::Serve { config } => miroir::commands::serve::run(&config).await,
            Command::Crd => {
                print!("{}", miroir::controlplane::cli::crd_yaml());
                Ok(())
            }
            Command::Operator(args) => miroir::controlplane::cli::run_operator(args).await,
        }
    });
    if let Err(e) = result {
        // One clear line, naming the cause chain.
        eprintln!("miroir: {e:#}");
        std::process::exit(1);
    }
}
