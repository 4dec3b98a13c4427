use std::process::ExitCode;

fn main() -> ExitCode {
    okta_dcr_worker::cli::main()
}
