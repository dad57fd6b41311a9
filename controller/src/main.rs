use clap::Parser;

fn main() {
    let args = vnet_te::cli::Cli::parse();
    vnet_te::cli::init_tracing(args.verbose);
    let code = match vnet_te::cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            // The whole chain: what we were doing, then why it failed.
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            vnet_te::error::exit_code_for(&e)
        }
    };
    std::process::exit(code);
}
