use clap::Parser;

fn main() {
    let args = vnet_te::cli::Cli::parse();
    vnet_te::cli::init_tracing(args.verbose);
    let code = match vnet_te::cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            // The whole chain: what we were doing, then why it failed. Errors that already
            // print their source's message ("step: source") would repeat it: each cause is
            // shown only when the line before does not end with it.
            eprintln!("error: {e}");
            let mut last = e.to_string();
            for cause in e.chain().skip(1) {
                let text = cause.to_string();
                if !last.ends_with(&text) {
                    eprintln!("  caused by: {text}");
                }
                last = text;
            }
            vnet_te::error::exit_code_for(&e)
        }
    };
    std::process::exit(code);
}
