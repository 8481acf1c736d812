//! The report's headings and labels in Finnish, Swedish and English (`callbackd report
//! --lang`), for the text and HTML formats. One table per language chosen by a [`Lang`],
//! as the patient page keeps its words; weekday names come from [`Lang::weekday`].
//!
//! CSV keys and JSON names are identifiers, not words: they stay English in every language.
//! Service ids, channel names and outcome names are identifiers too and are printed as
//! they are.

use crate::lang::Lang;

/// The words of one language.
#[derive(Debug)]
pub struct Words {
    /// The page title and first line, before the period's name.
    pub title: &'static str,
    /// "compared with" before the previous period's name.
    pub compared_with: &'static str,
    /// "Made" before the instant the report was made.
    pub made: &'static str,
    /// The all-services section's heading.
    pub all_services: &'static str,
    /// The figures table's first column.
    pub figure: &'static str,
    /// The day table's heading (text).
    pub by_day: &'static str,
    /// The day table's columns: date, requests, connected, same-day, mean minutes to
    /// callback.
    pub day_columns: [&'static str; 5],
    /// The hour tables' first column.
    pub hour: &'static str,
    /// The text report's hour table of requests.
    pub requests_by_hour: &'static str,
    /// The hour table and chart of the mean time to callback.
    pub mean_by_hour: &'static str,
    /// An hour table without requests.
    pub no_requests: &'static str,
    /// Under the HTML hour table.
    pub hour_note: &'static str,
    /// The HTML charts' captions: per day, same-day rate, outcome mix (the per-hour chart's
    /// is [`Words::mean_by_hour`]).
    pub charts: [&'static str; 3],
    /// The per-day chart's legend: requests, callbacks connected.
    pub legend: [&'static str; 2],
    /// Figure labels by key ([`super::render::lines`]).
    figures: Figures,
}

/// The label of each figure key.
#[derive(Debug)]
struct Figures {
    requests: &'static str,
    channel: &'static str,
    connected: &'static str,
    unreachable: &'static str,
    expired: &'static str,
    cancelled: &'static str,
    declined: &'static str,
    open: &'static str,
    to_callback_mean_min: &'static str,
    to_callback_p50_min: &'static str,
    to_callback_p90_min: &'static str,
    same_day_rate: &'static str,
    same_day_contacted: &'static str,
    same_day_of: &'static str,
    deadlines_missed: &'static str,
    first_attempt_reach: &'static str,
    attempts: &'static str,
    attempts_per_request: &'static str,
    outcome: &'static str,
    sms_sent: &'static str,
    punctuality: &'static str,
    punctuality_of: &'static str,
    mean_miss_min: &'static str,
}

const FI: Words = Words {
    title: "callbackd-raportti",
    compared_with: "verrattuna jaksoon",
    made: "Laadittu",
    all_services: "Kaikki palvelut",
    figure: "tunnusluku",
    by_day: "Päivittäin",
    day_columns: ["päivä", "pyynnöt", "tavoitetut", "samana päivänä", "keskim. min soittoon"],
    hour: "tunti",
    requests_by_hour: "Pyynnöt viikonpäivän ja tunnin mukaan",
    mean_by_hour: "Keskimääräiset minuutit soittoon pyynnön tunnin mukaan",
    no_requests: "(ei pyyntöjä)",
    hour_note: "Pyynnöt viikonpäivän ja pyynnön tunnin mukaan / keskimääräiset minuutit soittoon.",
    charts: [
        "Pyynnöt ja takaisinsoitot päivittäin",
        "Samana päivänä tavoitettujen osuus päivittäin (viiva: 100 %)",
        "Soittoyritysten tulokset",
    ],
    legend: ["pyynnöt", "tavoitetut takaisinsoitot"],
    figures: Figures {
        requests: "pyynnöt",
        channel: "kanava",
        connected: "tavoitetut",
        unreachable: "ei tavoitettu",
        expired: "vanhentuneet",
        cancelled: "perutut",
        declined: "potilas kieltäytyi",
        open: "avoimet",
        to_callback_mean_min: "odotus soittoon, keskiarvo min",
        to_callback_p50_min: "odotus soittoon, mediaani min",
        to_callback_p90_min: "odotus soittoon, 90 % min",
        same_day_rate: "tavoitettu samana päivänä",
        same_day_contacted: "samana päivänä tavoitetut",
        same_day_of: "samana päivänä, kaikkiaan",
        deadlines_missed: "määräaika ylittyi",
        first_attempt_reach: "tavoitettu ensimmäisellä yrityksellä",
        attempts: "soittoyritykset",
        attempts_per_request: "yrityksiä pyyntöä kohden",
        outcome: "tulos",
        sms_sent: "tekstiviestejä lähetetty:",
        punctuality: "soitto luvattuna aikana",
        punctuality_of: "luvattu aika, kaikkiaan",
        mean_miss_min: "poikkeama luvatusta ajasta, keskiarvo min",
    },
};

const SV: Words = Words {
    title: "callbackd-rapport",
    compared_with: "jämfört med",
    made: "Skapad",
    all_services: "Alla tjänster",
    figure: "nyckeltal",
    by_day: "Per dag",
    day_columns: ["dag", "begäranden", "nådda", "samma dag", "medel min till samtal"],
    hour: "timme",
    requests_by_hour: "Begäranden per veckodag och timme",
    mean_by_hour: "Medeltid i minuter till samtal per timme för begäran",
    no_requests: "(inga begäranden)",
    hour_note: "Begäranden per veckodag och timme för begäran / medeltid i minuter till samtal.",
    charts: [
        "Begäranden och återuppringningar per dag",
        "Andel nådda samma dag per dag (linje: 100 %)",
        "Samtalsförsökens utfall",
    ],
    legend: ["begäranden", "nådda återuppringningar"],
    figures: Figures {
        requests: "begäranden",
        channel: "kanal",
        connected: "nådda",
        unreachable: "inte nådda",
        expired: "förfallna",
        cancelled: "avbeställda",
        declined: "avböjda av patienten",
        open: "öppna",
        to_callback_mean_min: "väntan på samtal, medel min",
        to_callback_p50_min: "väntan på samtal, median min",
        to_callback_p90_min: "väntan på samtal, 90 % min",
        same_day_rate: "nådda samma dag",
        same_day_contacted: "antal nådda samma dag",
        same_day_of: "samma dag, av totalt",
        deadlines_missed: "tidsgräns överskriden",
        first_attempt_reach: "nådda vid första försöket",
        attempts: "samtalsförsök",
        attempts_per_request: "försök per begäran",
        outcome: "utfall",
        sms_sent: "sms skickade:",
        punctuality: "samtal inom utlovad tid",
        punctuality_of: "utlovad tid, av totalt",
        mean_miss_min: "avvikelse från utlovad tid, medel min",
    },
};

/// English: the labels are the figure keys with spaces, as they always were.
const EN: Words = Words {
    title: "callbackd report",
    compared_with: "compared with",
    made: "Made",
    all_services: "All services",
    figure: "figure",
    by_day: "By day",
    day_columns: ["date", "requests", "connected", "same-day", "to callback min"],
    hour: "hour",
    requests_by_hour: "Requests by hour of request",
    mean_by_hour: "Mean minutes to callback by hour of request",
    no_requests: "(no requests)",
    hour_note: "Requests by weekday and hour of request / their mean minutes to callback.",
    charts: [
        "Requests and callbacks per day",
        "Same-day rate per day (line: 100 %)",
        "Outcome mix of the attempts",
    ],
    legend: ["requests", "callbacks connected"],
    figures: Figures {
        requests: "requests",
        channel: "channel",
        connected: "connected",
        unreachable: "unreachable",
        expired: "expired",
        cancelled: "cancelled",
        declined: "declined",
        open: "open",
        to_callback_mean_min: "to callback mean min",
        to_callback_p50_min: "to callback p50 min",
        to_callback_p90_min: "to callback p90 min",
        same_day_rate: "same day rate",
        same_day_contacted: "same day contacted",
        same_day_of: "same day of",
        deadlines_missed: "deadlines missed",
        first_attempt_reach: "first attempt reach",
        attempts: "attempts",
        attempts_per_request: "attempts per request",
        outcome: "outcome",
        sms_sent: "SMS sent:",
        punctuality: "punctuality",
        punctuality_of: "punctuality of",
        mean_miss_min: "mean miss min",
    },
};

/// The report's words in `lang`.
pub fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::Fi => &FI,
        Lang::Sv => &SV,
        Lang::En => &EN,
    }
}

impl Words {
    /// The label of a figure key ([`super::render::lines`]): `channel api`, `outcome busy`,
    /// `SMS sent: notice` for the keyed families; an unknown key as its key with spaces.
    pub fn figure(&self, key: &str) -> String {
        let f = &self.figures;
        if let Some((family, name)) = key.split_once('.') {
            let head = match family {
                "by_channel" => f.channel,
                "outcome" => f.outcome,
                "sms_sent" => f.sms_sent,
                _ => return key.replace('_', " "),
            };
            return format!("{head} {name}");
        }
        let label = match key {
            "requests" => f.requests,
            "connected" => f.connected,
            "unreachable" => f.unreachable,
            "expired" => f.expired,
            "cancelled" => f.cancelled,
            "declined" => f.declined,
            "open" => f.open,
            "to_callback_mean_min" => f.to_callback_mean_min,
            "to_callback_p50_min" => f.to_callback_p50_min,
            "to_callback_p90_min" => f.to_callback_p90_min,
            "same_day_rate" => f.same_day_rate,
            "same_day_contacted" => f.same_day_contacted,
            "same_day_of" => f.same_day_of,
            "deadlines_missed" => f.deadlines_missed,
            "first_attempt_reach" => f.first_attempt_reach,
            "attempts" => f.attempts,
            "attempts_per_request" => f.attempts_per_request,
            "punctuality" => f.punctuality,
            "punctuality_of" => f.punctuality_of,
            "mean_miss_min" => f.mean_miss_min,
            other => return other.replace('_', " "),
        };
        label.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::render::lines;
    use crate::report::{Figures as ReportFigures, Share};

    /// Every key a report prints, families included.
    fn keys() -> Vec<String> {
        let mut f = ReportFigures::default();
        f.by_channel.insert("api".into(), 1);
        f.outcomes.insert("busy".into(), 1);
        f.sms_sent.insert("notice".into(), 1);
        f.punctuality = Share { hits: 1, of: 2, rate: Some(0.5) };
        lines(&f).into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn english_labels_are_the_keys_with_spaces() {
        let w = words(Lang::En);
        for k in keys().iter().filter(|k| !k.contains('.')) {
            assert_eq!(w.figure(k), k.replace('_', " "), "{k}");
        }
        assert_eq!(w.figure("by_channel.api"), "channel api");
        assert_eq!(w.figure("sms_sent.notice"), "SMS sent: notice");
    }

    #[test]
    fn every_figure_has_its_own_label_in_finnish_and_swedish() {
        for lang in [Lang::Fi, Lang::Sv] {
            let w = words(lang);
            let en = words(Lang::En);
            let mut seen = Vec::new();
            for k in keys() {
                let label = w.figure(&k);
                assert_ne!(label, en.figure(&k), "{lang}: {k} is not translated");
                assert!(!seen.contains(&label), "{lang}: {label:?} twice");
                seen.push(label);
            }
        }
    }
}
