use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "miroir", version, about = "One Meilisearch API in front of many Meilisearch nodes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Meilisearch API from a config file.
    Serve {
        #[arg(long, short)]
        config: std::path::PathBuf,
    },
    /// Print every CustomResourceDefinition (YAML, one document per CRD).
    Crd,
    /// Run on Kubernetes: serve the proxy and reconcile Miroir's custom resources into it.
    Operator(miroir::controlplane::cli::OperatorArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { .. } => anyhow::bail!("not implemented yet"),
        Command::Crd => {
            print!("{}", miroir::controlplane::cli::crd_yaml());
            Ok(())
        }
        Command::Operator(args) => {
            tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
            tokio::runtime::Runtime::new()?.block_on(miroir::controlplane::cli::run_operator(args))
        }
    }
}
