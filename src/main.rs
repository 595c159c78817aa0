//! The `hotline` command: the server and the tools to manage its users and bans.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hotline::config::Config;
use hotline::control::{BanSummary, Reply, Request, UserSummary};
use hotline::core::bans::Utc;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// A SIP registrar and proxy for a small private phone network, IPv6 end to end.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The configuration file (default: the built-in defaults, see config/hotline.toml).
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage users: works whether or not the server is running.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Show or lift bans of sources that failed authentication too often: works whether or not
    /// the server is running.
    Ban {
        #[command(subcommand)]
        action: BanAction,
    },
    /// Show or renew the TLS certificate: works whether or not the server is running.
    Cert {
        #[command(subcommand)]
        action: CertAction,
    },
    /// The first-boot wizard: domain, IPv6 check, TLS certificate, first extensions. Writes the
    /// configuration (default /etc/hotline/hotline.toml), creates the users and starts
    /// hotline.service. Run it again at any time: the users are kept.
    Setup {
        /// Take the answers from this TOML file instead of asking (see README.md).
        #[arg(long, value_name = "FILE")]
        answers: Option<PathBuf>,
        /// Do not enable or start hotline.service.
        #[arg(long)]
        no_service: bool,
    },
}

#[derive(Subcommand)]
enum BanAction {
    /// List the bans in force.
    List,
    /// Lift bans: an address (2001:db8::66) lifts every ban that covers it, a prefix
    /// (2001:db8:1:2::/64 or 2001:db8::66/128) exactly that ban.
    Remove {
        #[arg(value_name = "ADDR_OR_PREFIX")]
        scope: String,
    },
}

#[derive(Subcommand)]
enum CertAction {
    /// Issuer, names, expiry, next renewal and last error of the certificate served.
    Status,
    /// Obtain a new certificate from the ACME CA now.
    Renew,
}

#[derive(Subcommand)]
enum UserAction {
    /// Create an extension with a new random password, shown once.
    Add {
        extension: String,
        /// The name shown to the people it calls.
        #[arg(long, short, default_value = "")]
        name: String,
    },
    /// List extensions.
    List,
    /// Remove an extension and its registrations.
    Remove { extension: String },
    /// Give an extension a new random password, shown once.
    Passwd { extension: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("hotline: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let path = cli.config.as_deref();
    let command = cli.command.unwrap_or(Command::Serve);
    match command {
        // The wizard writes the configuration rather than reading it.
        Command::Setup {
            answers,
            no_service,
        } => setup(path, answers.as_deref(), no_service),
        Command::Serve => {
            let config = Config::load(path)?;
            init_logging(&config.log.level)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the runtime")?;
            runtime.block_on(hotline::net::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::User { action } => {
            let config = Config::load(path)?;
            let request = match action {
                UserAction::Add { extension, name } => Request::AddUser {
                    extension,
                    display_name: name,
                },
                UserAction::List => Request::ListUsers,
                UserAction::Remove { extension } => Request::RemoveUser { extension },
                UserAction::Passwd { extension } => Request::ResetPassword { extension },
            };
            let reply = manage(&config, &request)?;
            Ok(print_reply(&config, &reply))
        }
        Command::Cert { action } => {
            let config = Config::load(path)?;
            match action {
                CertAction::Status => {
                    print!(
                        "{}",
                        hotline::web::status::report(&config, hotline::clock::wall_ms())
                    );
                    Ok(ExitCode::SUCCESS)
                }
                CertAction::Renew => renew_certificate(&config),
            }
        }
        Command::Ban { action } => {
            let config = Config::load(path)?;
            let request = match action {
                BanAction::List => Request::ListBans,
                BanAction::Remove { scope } => Request::RemoveBan { scope },
            };
            let reply = manage(&config, &request)?;
            Ok(print_reply(&config, &reply))
        }
    }
}

/// Asks the running server, or opens the database when no server runs.
fn manage(config: &Config, request: &Request) -> anyhow::Result<Reply> {
    hotline::setup::manage(&config.data_dir, config.realm(), request)
}

/// Asks the running server to renew, or renews without it.
fn renew_certificate(config: &Config) -> anyhow::Result<ExitCode> {
    let socket = hotline::data_dir::DataDir::new(&config.data_dir).control_socket();
    let reply = match hotline::control::call(&socket, &Request::RenewCertificate) {
        Ok(reply) => reply,
        Err(hotline::control::ControlError::NoServer { .. }) => {
            println!("{}", hotline::web::renew_without_server(config)?);
            return Ok(ExitCode::SUCCESS);
        }
        Err(error) => return Err(error.into()),
    };
    Ok(print_reply(config, &reply))
}

/// `hotline setup`: on the terminal, or from an answers file.
fn setup(
    config: Option<&Path>,
    answers: Option<&Path>,
    no_service: bool,
) -> anyhow::Result<ExitCode> {
    use hotline::setup::{self, Answers, Dialog, Environment, Options};
    let answers = answers
        .map(|path| Answers::load(path).map(|answers| (path.to_owned(), answers)))
        .transpose()?;
    let service = !no_service
        && answers
            .as_ref()
            .is_none_or(|(_, answers)| answers.service != Some(false));
    let options = Options {
        config_path: config.map_or_else(|| PathBuf::from(setup::DEFAULT_CONFIG), Path::to_owned),
        answers,
        service,
    };
    let (mut stdin, mut stdout) = (std::io::stdin().lock(), std::io::stdout().lock());
    let mut dialog = match &options.answers {
        Some((path, _)) => Dialog::answers_file(path, &mut stdout),
        None => Dialog::terminal(&mut stdin, &mut stdout),
    };
    setup::run(&options, &Environment::detect(), &mut dialog)?;
    Ok(ExitCode::SUCCESS)
}

fn print_reply(config: &Config, reply: &Reply) -> ExitCode {
    match reply {
        Reply::Created { user, password } => {
            println!("Created extension {}.", describe(user));
            print_phone_settings(config, user, password);
        }
        Reply::PasswordReset { user, password } => {
            println!("New password for extension {}.", describe(user));
            print_phone_settings(config, user, password);
        }
        Reply::Removed { extension } => println!("Removed extension {extension}."),
        Reply::Users { users } if users.is_empty() => {
            println!("No extensions yet: add one with `hotline user add 1000 --name \"Alice\"`.")
        }
        Reply::Users { users } => {
            for user in users {
                println!("{:<16} {}", user.extension, user.display_name);
            }
        }
        Reply::Bans { bans } if bans.is_empty() => println!("No bans."),
        Reply::Bans { bans } => {
            let now = hotline::clock::wall_ms();
            for ban in bans {
                print_ban(ban, now);
            }
        }
        Reply::BansLifted { scopes } => {
            for scope in scopes {
                println!("Lifted the ban of {scope}.");
            }
        }
        Reply::CertificateRenewed { message } => println!("{message}"),
        Reply::Failed { message } => {
            eprintln!("hotline: {message}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// `2001:db8::66/128  until 2027-01-15T08:00:00Z (60 min left)  5 authentication failures …`;
/// the widest scope is 43 characters.
fn print_ban(ban: &BanSummary, now_ms: u64) {
    let minutes = ban.until_ms.saturating_sub(now_ms).div_ceil(60_000);
    println!(
        "{:<43}  until {} ({minutes} min left)  {}",
        ban.scope,
        Utc(ban.until_ms),
        ban.reason
    );
}

fn describe(user: &UserSummary) -> String {
    hotline::setup::describe(user)
}

/// What a person types into a phone's account settings.
fn print_phone_settings(config: &Config, user: &UserSummary, password: &str) {
    println!();
    println!("Phone settings:");
    print!(
        "{}",
        hotline::setup::phone_settings(config, &user.extension, password)
    );
    println!();
    println!(
        "The password is shown only now. `hotline user passwd {}` makes a new one.",
        user.extension
    );
}

/// journald when systemd started us (it sets JOURNAL_STREAM), stderr otherwise.
fn init_logging(level: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level).with_context(|| {
        format!("`log.level` {level:?} is not a level or filter: use info, debug, …")
    })?;
    let registry = tracing_subscriber::registry().with(filter);
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journald) = tracing_journald::layer()
    {
        registry.with(journald).init();
        return Ok(());
    }
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    registry.with(stderr).init();
    Ok(())
}
