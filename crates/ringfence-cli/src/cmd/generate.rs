//! `ringfence generate`: firewall rules for a site (nftables, iptables, NSX, Aerleon).

use crate::exit::{emit, CliError, SUCCESS};
use clap::{Args, ValueEnum};
use ringfence_generate::{generate_site, Family, Hook, Options, Output, Target};
use std::path::{Path, PathBuf};

/// The target platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetArg {
    /// nft -f script (inet table, interval sets).
    Nftables,
    /// iptables-restore / ip6tables-restore input.
    Iptables,
    /// NSX Policy API hierarchical PATCH body.
    Nsxt,
    /// Aerleon policy plus naming definitions.
    Aerleon,
}

/// The netfilter hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HookArg {
    /// Routed traffic (a firewall between networks).
    Forward,
    /// Traffic to this host.
    Input,
    /// Traffic from this host.
    Output,
}

/// Arguments of `ringfence generate`.
#[derive(Debug, Args)]
#[command(after_help = "\
Output: stdout, or --out PATH (written atomically).
Single-file targets (nftables, nsxt): --out is the file, or a directory (existing, or a
  path ending in /) that receives <site>.nft / <site>.nsxt.json.
iptables: two files (IPv4, IPv6). To stdout pass --family 4 or 6. With --out: an existing
  directory (or a path ending in /) receives <site>.v4.rules and <site>.v6.rules; any other
  PATH is a stem: PATH.v4.rules and PATH.v6.rules (a trailing .rules is dropped first).
  With --family and --out, --out is the file itself.
aerleon: --out is a directory (created if missing) receiving policies/pol/<site>-v4.yaml,
  policies/pol/<site>-v6.yaml, def/networks.yaml and def/services.yaml; on stdout the files
  are printed as YAML documents, each preceded by a `# file: PATH` comment.")]
pub struct GenerateArgs {
    #[command(flatten)]
    pub site: crate::cmd::flows::SiteArgs,
    /// Target platform.
    #[arg(long, value_enum, required_unless_present = "list_targets")]
    pub target: Option<TargetArg>,
    /// Hook / built-in chain to filter on (nftables, iptables, aerleon).
    #[arg(long, value_enum, default_value = "forward")]
    pub hook: HookArg,
    /// Only this address family (4 or 6).
    #[arg(long, value_parser = ["4", "6"])]
    pub family: Option<String>,
    /// NSX DFW category of the security policy (nsxt).
    #[arg(long, value_name = "NAME", default_value = "Infrastructure")]
    pub nsx_category: String,
    /// NSX group the policy and its rules apply to (`scope`), as a group id in
    /// domain default or a /infra/domains/... path; repeatable. Default: the
    /// groups of the site's management, workload, jumpbox and bootstrap
    /// zones. ANY is refused.
    #[arg(long, value_name = "GROUP")]
    pub nsx_scope: Vec<String>,
    /// Write here instead of stdout (see below for multi-file targets).
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// List the targets, one per line, and exit.
    #[arg(long)]
    pub list_targets: bool,
}

fn to_target(t: TargetArg) -> Target {
    match t {
        TargetArg::Nftables => Target::Nftables,
        TargetArg::Iptables => Target::Iptables,
        TargetArg::Nsxt => Target::Nsxt,
        TargetArg::Aerleon => Target::Aerleon,
    }
}

/// Run `ringfence generate`.
pub fn run(args: GenerateArgs) -> Result<u8, CliError> {
    if args.list_targets {
        let mut text = String::new();
        for t in Target::ALL {
            text.push_str(&format!("{:<9} {}\n", t.name(), t.description()));
        }
        emit(None, text.as_bytes())?;
        return Ok(SUCCESS);
    }
    let target = to_target(
        args.target
            .ok_or_else(|| CliError::Usage("--target is required".into()))?,
    );
    let site = args.site.load()?;
    let opts = Options {
        hook: match args.hook {
            HookArg::Forward => Hook::Forward,
            HookArg::Input => Hook::Input,
            HookArg::Output => Hook::Output,
        },
        family: match args.family.as_deref() {
            Some("4") => Some(Family::V4),
            Some("6") => Some(Family::V6),
            _ => None,
        },
        nsx_category: args.nsx_category.clone(),
        nsx_scope: args.nsx_scope.clone(),
    };
    let output = generate_site(&site, target, &opts).map_err(|e| CliError::Usage(e.to_string()))?;
    write_output(&output, args.out.as_deref())?;
    Ok(SUCCESS)
}

fn write_output(output: &Output, out: Option<&Path>) -> Result<(), CliError> {
    match (output.target, out) {
        (_, _) if output.files.len() == 1 && output.target != Target::Aerleon => {
            let f = &output.files[0];
            match out {
                Some(dir) if dir.is_dir() || dir.to_string_lossy().ends_with('/') => {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        CliError::Io(format!("creating {}: {e}", dir.display()))
                    })?;
                    emit(Some(&dir.join(&f.path)), f.contents.as_bytes())
                }
                _ => emit(out, f.contents.as_bytes()),
            }
        }
        (Target::Aerleon, None) => {
            let mut text = String::new();
            for (i, f) in output.files.iter().enumerate() {
                if i > 0 {
                    text.push_str("---\n");
                }
                text.push_str(&format!("# file: {}\n", f.path));
                text.push_str(&f.contents);
            }
            emit(None, text.as_bytes())
        }
        (Target::Aerleon, Some(dir)) => {
            for f in &output.files {
                let path = dir.join(&f.path);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        CliError::Io(format!("creating {}: {e}", parent.display()))
                    })?;
                }
                emit(Some(&path), f.contents.as_bytes())?;
            }
            Ok(())
        }
        (_, None) => Err(CliError::Usage(format!(
            "{} output is {} files ({}); pass --family 4 or --family 6 to print one, or --out PATH to write all",
            output.target,
            output.files.len(),
            output
                .files
                .iter()
                .map(|f| f.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        (_, Some(path)) => {
            let text = path.to_string_lossy();
            let is_dir = path.is_dir() || text.ends_with('/');
            for f in &output.files {
                let dest = if is_dir {
                    std::fs::create_dir_all(path).map_err(|e| {
                        CliError::Io(format!("creating {}: {e}", path.display()))
                    })?;
                    path.join(&f.path)
                } else {
                    let stem = text.strip_suffix(".rules").unwrap_or(&text);
                    PathBuf::from(format!("{stem}.{}.rules", f.role.replace("ip", "")))
                };
                emit(Some(&dest), f.contents.as_bytes())?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(target: Target) -> Output {
        generate_site(&ringfence_site::example_site(), target, &Options::default()).unwrap()
    }

    #[test]
    fn iptables_out_directory_receives_one_file_per_family() {
        let dir = tempfile::tempdir().unwrap();
        write_output(&output(Target::Iptables), Some(dir.path())).unwrap();
        let v4 = std::fs::read_to_string(dir.path().join("example-dc.v4.rules")).unwrap();
        let v6 = std::fs::read_to_string(dir.path().join("example-dc.v6.rules")).unwrap();
        assert!(v4.contains("IPv4 filter table") && v6.contains("IPv6 filter table"));
    }

    #[test]
    fn iptables_out_stem_drops_a_rules_extension() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("fw.rules");
        write_output(&output(Target::Iptables), Some(&stem)).unwrap();
        assert!(dir.path().join("fw.v4.rules").is_file());
        assert!(dir.path().join("fw.v6.rules").is_file());
        assert!(!stem.exists());
    }

    #[test]
    fn iptables_to_stdout_without_family_is_a_usage_error() {
        match write_output(&output(Target::Iptables), None) {
            Err(CliError::Usage(m)) => assert!(m.contains("--family"), "{m}"),
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn aerleon_out_writes_the_aclgen_tree() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("export");
        write_output(&output(Target::Aerleon), Some(&out)).unwrap();
        for p in [
            "policies/pol/example-dc-v4.yaml",
            "def/networks.yaml",
            "def/services.yaml",
        ] {
            assert!(out.join(p).is_file(), "{p} missing");
        }
    }

    #[test]
    fn single_file_targets_into_a_directory_use_the_site_name() {
        let dir = tempfile::tempdir().unwrap();
        write_output(&output(Target::Nsxt), Some(dir.path())).unwrap();
        assert!(dir.path().join("example-dc.nsxt.json").is_file());
    }

    #[test]
    fn single_file_targets_write_exactly_the_out_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.nft");
        write_output(&output(Target::Nftables), Some(&path)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("#!/usr/sbin/nft -f\n"));
    }
}
