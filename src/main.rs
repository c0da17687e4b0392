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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { .. } => anyhow::bail!("not implemented yet"),
    }
}
