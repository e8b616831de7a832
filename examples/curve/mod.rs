//! The examples' CURVE options: `--curve-server-key` (the broker's public
//! certificate) and `--curve-key` (the program's own secret certificate),
//! both or neither, as files written by `mdkeygen` (or czmq or pyzmq).

use clap::Args;
use majordomo::curve::{CurveClient, CurveError};

/// Connect with CURVE (26/CURVEZMQ) when both files are given.
#[derive(Args)]
pub struct CurveArgs {
    /// The broker's public certificate (BROKER.key): connect with CURVE.
    #[arg(long, value_name = "FILE", requires = "curve_key")]
    curve_server_key: Option<std::path::PathBuf>,
    /// This program's secret certificate (NAME.key_secret), for CURVE.
    #[arg(long, value_name = "FILE", requires = "curve_server_key")]
    curve_key: Option<std::path::PathBuf>,
}

impl CurveArgs {
    /// The CURVE setting, if the files were given.
    pub fn load(&self) -> Result<Option<CurveClient>, CurveError> {
        match (&self.curve_server_key, &self.curve_key) {
            (Some(server), Some(own)) => CurveClient::from_files(server, own).map(Some),
            _ => Ok(None),
        }
    }
}
