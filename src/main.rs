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
#[command(about, disable_version_flag = true)]
struct Cli {
    /// Print the version, and the Debian package's when installed from one.
    #[arg(long, short = 'V')]
    version: bool,
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
    /// The owner's password for the web pages: works whether or not the server is running.
    Owner {
        #[command(subcommand)]
        action: OwnerAction,
    },
    /// Show or renew the TLS certificate: works whether or not the server is running.
    Cert {
        #[command(subcommand)]
        action: CertAction,
    },
    /// Write a backup: users (their password hashes), bans, bindings, provisioning links, the
    /// owner's password hash, the configuration, the TLS certificate and key, the install secret
    /// and the password key. Works whether or not the server is running.
    Backup {
        /// The file to write, readable by its owner only.
        file: PathBuf,
        #[command(flatten)]
        encryption: Encryption,
    },
    /// Restore a backup on a new card: every extension keeps its password, the owner theirs,
    /// every provisioning link its phone's settings. Stop the server first. Writes the configuration (default /etc/hotline/hotline.toml) and the data directory.
    Restore {
        file: PathBuf,
        /// The passphrase of an encrypted backup is on the first line of this file (otherwise
        /// it is asked on the terminal).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Restore into this data directory rather than the backup configuration's `data_dir`.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Replace the extensions of a database that has some already.
        #[arg(long)]
        replace: bool,
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

#[derive(clap::Args)]
struct Encryption {
    /// Encrypt with a passphrase, asked on the terminal.
    #[arg(long)]
    encrypt: bool,
    /// Encrypt with the passphrase on the first line of this file.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
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
enum OwnerAction {
    /// Set a new owner password, read from standard input (asked twice on a terminal); every
    /// session of the web pages ends.
    Passwd,
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
    /// Give an extension a new display name.
    Rename {
        extension: String,
        #[arg(long, short)]
        name: String,
    },
    /// Show a new provisioning link for an extension (as a URL and a QR code); the old link
    /// stops working.
    Provision {
        extension: String,
        /// End the extension's link without making a new one.
        #[arg(long)]
        revoke: bool,
    },
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
    use hotline::version;
    if cli.version {
        println!("{}", version::describe(version::package().as_deref()));
        return Ok(ExitCode::SUCCESS);
    }
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
            let package = hotline::version::package();
            tracing::info!(
                version = %hotline::version::VERSION,
                package = %package.as_deref().unwrap_or("none"),
                "hotline starting"
            );
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the runtime")?;
            runtime.block_on(hotline::net::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { file, encryption } => {
            let config = Config::load(path)?;
            backup(path, &config, &file, &encryption)
        }
        Command::Restore {
            file,
            passphrase_file,
            data_dir,
            replace,
        } => {
            let options = hotline::backup::Restore {
                config_path: path.map_or_else(
                    || PathBuf::from(hotline::setup::DEFAULT_CONFIG),
                    Path::to_owned,
                ),
                data_dir,
                replace,
            };
            restore(&options, &file, passphrase_file.as_deref())
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
                UserAction::Rename { extension, name } => Request::RenameUser {
                    extension,
                    display_name: name,
                },
                UserAction::Provision { extension, revoke } => {
                    Request::ProvisionUser { extension, revoke }
                }
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
        Command::Owner {
            action: OwnerAction::Passwd,
        } => {
            let config = Config::load(path)?;
            let hash = hotline::web::owner::password::hash(&read_owner_password()?)?;
            let reply = manage(&config, &Request::SetOwnerPassword { hash })?;
            Ok(print_reply(&config, &reply))
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

/// The new owner password from standard input: asked twice on a terminal, which does not echo
/// it; one line from a pipe, for scripts.
fn read_owner_password() -> anyhow::Result<String> {
    use hotline::terminal::{read_line, read_secret};
    let stdin = std::io::stdin();
    let ended = "the input ended before the password";
    if !stdin.is_terminal() {
        return read_line(&mut stdin.lock())?.context(ended);
    }
    let ask = |prompt: &str| read_secret(prompt, &mut stdin.lock())?.context(ended);
    let password = ask("New owner password (not shown as you type): ")?;
    if let Err(error) = hotline::web::owner::password::check(&password) {
        anyhow::bail!("{error}: run `hotline owner passwd` again");
    }
    if ask("The same again: ")? != password {
        anyhow::bail!("the two passwords differ: run `hotline owner passwd` again");
    }
    Ok(password)
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

/// `hotline backup FILE`.
fn backup(
    config_path: Option<&Path>,
    config: &Config,
    file: &Path,
    encryption: &Encryption,
) -> anyhow::Result<ExitCode> {
    use hotline::backup::{self, passphrase};
    let passphrase =
        passphrase::for_new_backup(encryption.passphrase_file.as_deref(), encryption.encrypt)?;
    let taken = backup::take(config_path, config)?;
    let text = taken.encode(passphrase.as_deref())?;
    backup::write_file(file, &text)
        .with_context(|| format!("cannot write the backup {}", file.display()))?;
    println!("{}", backup::summary(&taken, file, passphrase.is_some()));
    Ok(ExitCode::SUCCESS)
}

/// `hotline restore FILE`.
fn restore(
    options: &hotline::backup::Restore,
    file: &Path,
    passphrase_file: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    use hotline::backup::{self, Backup, passphrase};
    let text = backup::read_file(file)?;
    let passphrase = match (Backup::is_encrypted(&text), passphrase_file) {
        (false, _) => None,
        (true, Some(path)) => Some(passphrase::from_file(path)?),
        (true, None) => Some(passphrase::ask(false)?),
    };
    let taken = Backup::decode(&text, passphrase.as_deref())?;
    let restored = backup::restore(options, &taken)?;
    println!("{}", backup::restored_summary(&restored, options));
    Ok(ExitCode::SUCCESS)
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
        None => Dialog::terminal(&mut stdin, &mut stdout).on_stdin(),
    };
    setup::run(&options, &Environment::detect(), &mut dialog)?;
    Ok(ExitCode::SUCCESS)
}

fn print_reply(config: &Config, reply: &Reply) -> ExitCode {
    match reply {
        Reply::Created {
            user,
            password,
            token,
        } => {
            println!("Created extension {}.", describe(user));
            print_phone_settings(config, user, password);
            println!();
            print!("{}", hotline::setup::provisioning_link(config, user, token));
        }
        Reply::Provisioned {
            user,
            token,
            password,
        } => {
            if let Some(password) = password {
                println!(
                    "Extension {} had a password from before provisioning links, which vendor \
                     files cannot carry: it has a new one now. Phones set up by hand need it \
                     (or the link).",
                    describe(user)
                );
                print_phone_settings(config, user, password);
                println!();
            }
            print!("{}", hotline::setup::provisioning_link(config, user, token));
        }
        Reply::LinkRevoked { extension } => {
            println!("The provisioning link of extension {extension} no longer works.")
        }
        Reply::PasswordReset { user, password } => {
            println!("New password for extension {}.", describe(user));
            print_phone_settings(config, user, password);
        }
        Reply::Removed { extension } => println!("Removed extension {extension}."),
        Reply::Renamed { user } => println!("Renamed extension {}.", describe(user)),
        Reply::OwnerPasswordSet => {
            println!("The owner's password is set; sessions of the web pages have ended.")
        }
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
        Reply::Snapshot { .. } | Reply::OwnerPassword { .. } => {
            eprintln!("hotline: the server answered what was not asked for");
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
