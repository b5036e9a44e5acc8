use clap::Parser as _;

fn main() {
    let cli = restore_drill::cli::Cli::parse();
    let code = restore_drill::commands::dispatch(cli.command);
    std::process::exit(code as i32);
}
