//! Hand-over signalling: blind transfer with REFER (following the NOTIFY sipfrags), and the
//! parsing of in-dialog messages the call flow needs (sipfrag status, SIP INFO DTMF).
//! Parsing is pure; [`transfer`] drives one dialog.

use rsipstack::dialog::dialog::DialogState;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{self, StatusCode, StatusCodeKind};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Why a hand-over failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandoverError {
    /// The PBX refused the REFER itself.
    #[error("REFER refused with {0}")]
    ReferRejected(u16),
    /// No answer to the REFER.
    #[error("no answer to the REFER")]
    NoReferResponse,
    /// The transfer target answered with a failure (NOTIFY sipfrag).
    #[error("transfer failed with {0}")]
    TransferFailed(u16),
    /// No final NOTIFY in time.
    #[error("no final transfer progress in time")]
    Timeout,
    /// The patient hung up meanwhile.
    #[error("the patient hung up")]
    Hangup,
    /// The daemon is shutting down and its grace period is over.
    #[error("shutting down")]
    Shutdown,
    /// The staff leg could not be called.
    #[error("staff leg failed: {0}")]
    StaffLeg(String),
}

/// The status code in a `message/sipfrag` body (`SIP/2.0 200 OK`).
pub fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().map(str::trim).find(|l| l.starts_with("SIP/2.0"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The key in a SIP INFO DTMF body: `application/dtmf-relay` (`Signal=1`) or
/// `application/dtmf` (`1`).
pub fn info_digit(body: &[u8]) -> Option<char> {
    let text = std::str::from_utf8(body).ok()?;
    let value = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })
        .or_else(|| Some(text.trim()))?;
    let mut chars = value.chars();
    let c = chars.next()?;
    (chars.next().is_none() && matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')).then_some(c)
}

/// Blind transfer of the patient's dialog to `target` with REFER; waits for the final NOTIFY
/// (answering every NOTIFY 200). In-dialog INFOs meanwhile are answered 200 and ignored.
pub async fn transfer(
    dialog: &InviteDialog,
    target: &str,
    states: &mut mpsc::UnboundedReceiver<DialogState>,
    limit: Duration,
    hangup: &tokio_util::sync::CancellationToken,
) -> Result<(), HandoverError> {
    let refer_to = sip::headers::ReferTo::from(format!("<{target}>"));
    let resp = tokio::select! {
        r = dialog.refer(refer_to, None, None) => r,
        () = hangup.cancelled() => return Err(HandoverError::Shutdown),
    };
    match resp {
        Ok(Some(r)) if r.status_code.kind() == StatusCodeKind::Successful => {
            info!(sip = r.status_code.code(), "REFER accepted");
        }
        Ok(Some(r)) => return Err(HandoverError::ReferRejected(r.status_code.code())),
        Ok(None) | Err(_) => return Err(HandoverError::NoReferResponse),
    }
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    loop {
        let state = tokio::select! {
            _ = &mut deadline => return Err(HandoverError::Timeout),
            () = hangup.cancelled() => return Err(HandoverError::Shutdown),
            s = states.recv() => s,
        };
        match state {
            Some(DialogState::Notify(_, req, handle)) => {
                let _ = handle.reply(StatusCode::OK).await;
                match sipfrag_status(&req.body) {
                    Some(code) if code < 200 => debug!(sip = code, "transfer progress"),
                    Some(code) if code < 300 => {
                        info!(sip = code, "transfer succeeded");
                        notify_answered(states).await;
                        return Ok(());
                    }
                    Some(code) => return Err(HandoverError::TransferFailed(code)),
                    None => warn!("NOTIFY without a sipfrag status"),
                }
            }
            Some(DialogState::Info(_, _, handle)) | Some(DialogState::Options(_, _, handle)) => {
                let _ = handle.reply(StatusCode::OK).await;
            }
            Some(DialogState::Updated(_, _, handle)) | Some(DialogState::Message(_, _, handle)) => {
                let _ = handle.reply(StatusCode::OK).await;
            }
            // The PBX ends our leg once the transfer completed: that is success too when
            // no failure was reported.
            Some(DialogState::Terminated(_, reason)) => {
                info!(?reason, "dialog ended during the transfer");
                return Err(HandoverError::Hangup);
            }
            Some(
                DialogState::Calling(_)
                | DialogState::Trying(_)
                | DialogState::Early(_, _)
                | DialogState::WaitAck(_, _)
                | DialogState::Confirmed(_, _)
                | DialogState::Publish(_, _, _)
                | DialogState::Refer(_, _, _),
            ) => {}
            None => return Err(HandoverError::Hangup),
        }
    }
}

/// The longest [`notify_answered`] waits: far above a send on any link, short enough that
/// a stack that never said so would cost each hand-over little.
const NOTIFY_ANSWERED_WAIT: Duration = Duration::from_millis(200);

/// Waits until our 200 to the final NOTIFY has left, so the BYE that follows cannot
/// overtake it (a PBX, or sipp, may take a BYE first as the transfer failing). The SIP
/// stack sends the response from the NOTIFY's own transaction and only then moves the
/// dialog back to `Confirmed`, which it broadcasts on `states`: that is the sign. Requests
/// that arrive meanwhile are answered 200, as in the transfer wait; a dialog that ends
/// meanwhile ends the wait. Bounded by [`NOTIFY_ANSWERED_WAIT`].
async fn notify_answered(states: &mut mpsc::UnboundedReceiver<DialogState>) {
    let sent = async {
        while let Some(state) = states.recv().await {
            match state {
                DialogState::Confirmed(..) | DialogState::Terminated(..) => return,
                DialogState::Notify(_, _, handle)
                | DialogState::Info(_, _, handle)
                | DialogState::Options(_, _, handle)
                | DialogState::Updated(_, _, handle)
                | DialogState::Message(_, _, handle) => {
                    let _ = handle.reply(StatusCode::OK).await;
                }
                _ => {}
            }
        }
    };
    if tokio::time::timeout(NOTIFY_ANSWERED_WAIT, sent).await.is_err() {
        debug!("no word that the 200 to the NOTIFY left; going on");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sipfrag_bodies() {
        assert_eq!(sipfrag_status(b"SIP/2.0 200 OK\r\n"), Some(200));
        assert_eq!(sipfrag_status(b"SIP/2.0 100 Trying"), Some(100));
        assert_eq!(sipfrag_status(b"SIP/2.0 503 Service Unavailable\r\n\r\n"), Some(503));
        assert_eq!(sipfrag_status(b"garbage"), None);
    }

    #[test]
    fn info_dtmf_bodies() {
        assert_eq!(info_digit(b"Signal=1\r\nDuration=160\r\n"), Some('1'));
        assert_eq!(info_digit(b"Signal= 9\r\n"), Some('9'));
        assert_eq!(info_digit(b"#"), Some('#'));
        assert_eq!(info_digit(b"Signal=12"), None);
        assert_eq!(info_digit(b""), None);
    }
}
