//! `certgate`: `certgate server` runs a node (control plane + data plane in one process); every
//! other subcommand calls a node's management API (see [`cli`]).

mod bootstrap;
mod cli;
mod cluster;
mod config;
mod config_error;
mod control;
mod logging;
mod refresher;
mod server;
mod sockets;
mod telemetry;
mod vault_config;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "certgate", version, about = "An API gateway that authenticates to backends with client certificates")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a gateway node: the management API and the gateway listeners.
    Server(Box<config::ServerArgs>),
    #[command(flatten)]
    Client(Box<cli::ClientCommand>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => server::main(*args),
        Command::Client(command) => cli::main(*command, Cli::command),
    }
}
