//! The patient page's HTML, in Finnish, Swedish and English (pure: data in, text out).
//!
//! Plain HTML that works without JavaScript, mobile first: one column, system fonts,
//! 44-pixel targets, the language in `<html lang>`, every form control labelled, one `h1`
//! and an `h2` per section. The stylesheet and the refresh script are files of the same
//! origin ([`CSS`], [`JS`]) so the Content-Security-Policy needs no inline code.

use crate::lang::Lang;
use crate::policy::Eta;
use crate::policy::lifecycle::State;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::fmt::Write as _;

/// The stylesheet (`/static/page.css`). Colours meet WCAG AA contrast (≥ 4.5:1 for text).
pub const CSS: &str = include_str!("page.css");
/// The refresh script (`/static/page.js`): reloads only the status section every minute
/// while the page is visible.
pub const JS: &str = include_str!("page.js");

/// What the page shows about one request.
#[derive(Debug, Clone)]
pub struct View<'a> {
    /// The page's language.
    pub lang: Lang,
    /// The link token (for the page's own URLs).
    pub token: &'a str,
    /// The form MAC ([`crate::link::Keys::form`]).
    pub form: &'a str,
    /// The service's name.
    pub service: &'a str,
    /// The service's time zone.
    pub tz: &'a TimeZone,
    /// The request's state.
    pub state: State,
    /// Cancelled while a call was live.
    pub cancel_requested: bool,
    /// Place in the queue (1 = next), waiting requests only.
    pub place: Option<i64>,
    /// The expected window, waiting requests only.
    pub eta: Option<Eta>,
    /// The patient's number, masked.
    pub number: Option<String>,
    /// The window the patient chose (`None`: any time).
    pub window: Option<String>,
    /// The caller ID in national form and E.164 (`09 31045501`, `+358931045501`).
    pub caller: Option<(String, String)>,
    /// Windows that can still be served, with the ETA each would give (`None` = any time).
    pub offers: Vec<(Option<String>, Option<Eta>)>,
    /// "Call me on the next open day instead" is offered, with the ETA it would give.
    pub next_day: Option<Option<Eta>>,
    /// A message after a form was sent.
    pub done: Option<Done>,
    /// Now (for "today"/"tomorrow" and the "updated" line).
    pub now: Timestamp,
}

/// What became of the patient's last form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// The window was changed.
    Window,
    /// The request was moved to the next open day.
    NextDay,
    /// The request was cancelled.
    Cancelled,
    /// Cancelled, but the call in progress goes on.
    CancelAfterCall,
    /// The change could not be made (the request moved on, or the window closed).
    Refused,
}

impl Done {
    /// As carried in the redirect's query.
    pub fn as_str(self) -> &'static str {
        match self {
            Done::Window => "window",
            Done::NextDay => "next-day",
            Done::Cancelled => "cancelled",
            Done::CancelAfterCall => "cancel-after-call",
            Done::Refused => "refused",
        }
    }

    /// Parses [`Done::as_str`].
    pub fn parse(s: &str) -> Option<Done> {
        [Done::Window, Done::NextDay, Done::Cancelled, Done::CancelAfterCall, Done::Refused]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// The page's words in one language.
struct Words {
    title: &'static str,
    lang_nav: &'static str,
    status: &'static str,
    waiting: &'static str,
    calling: &'static str,
    called: &'static str,
    unreachable: &'static str,
    cancelled: &'static str,
    cancel_after_call: &'static str,
    place: &'static str,
    expected: &'static str,
    no_estimate: &'static str,
    your_number: &'static str,
    your_window: &'static str,
    any_time: &'static str,
    updated: &'static str,
    caller_h: &'static str,
    caller_hint: &'static str,
    save_contact: &'static str,
    window_h: &'static str,
    window_legend: &'static str,
    window_submit: &'static str,
    around: &'static str,
    next_day_h: &'static str,
    next_day_text: &'static str,
    next_day_submit: &'static str,
    done_next_day: &'static str,
    cancel_h: &'static str,
    cancel_text: &'static str,
    cancel_submit: &'static str,
    done_window: &'static str,
    done_cancelled: &'static str,
    done_after_call: &'static str,
    done_refused: &'static str,
    today: &'static str,
    tomorrow: &'static str,
    privacy: &'static str,
}

const FI: Words = Words {
    title: "Takaisinsoittopyyntösi",
    lang_nav: "Kieli",
    status: "Tilanne",
    waiting: "Odottaa soittoa",
    calling: "Soitamme sinulle nyt",
    called: "Sinulle on soitettu",
    unreachable: "Emme tavoittaneet sinua",
    cancelled: "Peruttu",
    cancel_after_call: "Peruttu: meneillään olevaa puhelua ei katkaista, eikä sinulle soiteta uudelleen.",
    place: "Paikkasi jonossa",
    expected: "Arvioitu soittoaika",
    no_estimate: "Arviota ei voi vielä antaa",
    your_number: "Soitamme numeroon",
    your_window: "Toivomasi aika",
    any_time: "Milloin tahansa aukioloaikana",
    updated: "Päivitetty",
    caller_h: "Soitamme numerosta",
    caller_hint: "Tallenna numero puhelimeesi, niin tunnistat soittomme.",
    save_contact: "Tallenna yhteystieto",
    window_h: "Vaihda soittoaikaa",
    window_legend: "Milloin sinulle sopii?",
    window_submit: "Vaihda aika",
    around: "arvio",
    next_day_h: "Soitto vasta seuraavana aukiolopäivänä",
    next_day_text: "Jos tänään ei sovi, voimme soittaa seuraavana aukiolopäivänä.",
    next_day_submit: "Soittakaa seuraavana aukiolopäivänä",
    done_next_day: "Soitamme seuraavana aukiolopäivänä.",
    cancel_h: "En tarvitse enää soittoa",
    cancel_text: "Jos asiasi on hoitunut, peru pyyntö, niin jono lyhenee muilta.",
    cancel_submit: "Peru takaisinsoitto",
    done_window: "Soittoaika vaihdettu.",
    done_cancelled: "Takaisinsoitto on peruttu.",
    done_after_call: "Soitamme sinulle juuri nyt. Puhelua ei katkaista, mutta uutta soittoa ei tule.",
    done_refused: "Muutosta ei voitu tehdä. Tilanne on alla.",
    today: "tänään",
    tomorrow: "huomenna",
    privacy: "Sivulla ei näytetä terveystietoja. Älä jaa tätä linkkiä.",
};

const SV: Words = Words {
    title: "Din begäran om återuppringning",
    lang_nav: "Språk",
    status: "Läge",
    waiting: "Väntar på samtal",
    calling: "Vi ringer dig nu",
    called: "Vi har ringt dig",
    unreachable: "Vi nådde dig inte",
    cancelled: "Avbeställd",
    cancel_after_call: "Avbeställd: samtalet som pågår avbryts inte, och vi ringer inte igen.",
    place: "Din plats i kön",
    expected: "Uppskattad tid för samtalet",
    no_estimate: "Ingen uppskattning ännu",
    your_number: "Vi ringer till numret",
    your_window: "Önskad tid",
    any_time: "När som helst under öppettiden",
    updated: "Uppdaterad",
    caller_h: "Vi ringer från numret",
    caller_hint: "Spara numret i din telefon så att du känner igen samtalet.",
    save_contact: "Spara kontakten",
    window_h: "Byt tid för samtalet",
    window_legend: "När passar det dig?",
    window_submit: "Byt tid",
    around: "uppskattning",
    next_day_h: "Samtal först nästa öppna dag",
    next_day_text: "Om det inte passar i dag kan vi ringa nästa dag vi har öppet.",
    next_day_submit: "Ring mig nästa öppna dag",
    done_next_day: "Vi ringer nästa dag vi har öppet.",
    cancel_h: "Jag behöver inte längre samtalet",
    cancel_text: "Om ditt ärende har ordnat sig, avbeställ begäran så blir kön kortare för andra.",
    cancel_submit: "Avbeställ återuppringningen",
    done_window: "Tiden har ändrats.",
    done_cancelled: "Återuppringningen är avbeställd.",
    done_after_call: "Vi ringer dig just nu. Samtalet avbryts inte, men vi ringer inte igen.",
    done_refused: "Ändringen kunde inte göras. Läget visas nedan.",
    today: "i dag",
    tomorrow: "i morgon",
    privacy: "Sidan visar inga hälsouppgifter. Dela inte den här länken.",
};

const EN: Words = Words {
    title: "Your callback request",
    lang_nav: "Language",
    status: "Status",
    waiting: "Waiting for the call",
    calling: "We are calling you now",
    called: "We have called you",
    unreachable: "We could not reach you",
    cancelled: "Cancelled",
    cancel_after_call: "Cancelled: the call in progress is not cut off, and we will not call again.",
    place: "Your place in the queue",
    expected: "Expected time of the call",
    no_estimate: "No estimate yet",
    your_number: "We will call the number",
    your_window: "Your preferred time",
    any_time: "Any time during opening hours",
    updated: "Updated",
    caller_h: "We will call from",
    caller_hint: "Save this number in your phone so that you recognise our call.",
    save_contact: "Save the contact",
    window_h: "Change the time of the call",
    window_legend: "When suits you?",
    window_submit: "Change the time",
    around: "estimate",
    next_day_h: "Call me on the next open day instead",
    next_day_text: "If today does not suit you, we can call you on the next day we are open.",
    next_day_submit: "Call me on the next open day",
    done_next_day: "We will call you on the next day we are open.",
    cancel_h: "I no longer need the call",
    cancel_text: "If your matter has been dealt with, cancel the request and the queue gets shorter for others.",
    cancel_submit: "Cancel the callback",
    done_window: "The time has been changed.",
    done_cancelled: "The callback has been cancelled.",
    done_after_call: "We are calling you right now. The call is not cut off, but we will not call again.",
    done_refused: "The change could not be made. The current status is below.",
    today: "today",
    tomorrow: "tomorrow",
    privacy: "This page shows no health information. Do not share this link.",
};

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::Fi => &FI,
        Lang::Sv => &SV,
        Lang::En => &EN,
    }
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `today 10:30–11:00`, `tomorrow 08:00–08:30`, `Wed 2.12. 09:00–09:30`.
pub fn window_words(lang: Lang, tz: &TimeZone, now: Timestamp, eta: Eta) -> String {
    let w = words(lang);
    let (from, to) = (eta.from.to_zoned(tz.clone()), eta.to.to_zoned(tz.clone()));
    let today = now.to_zoned(tz.clone()).date();
    let day = if from.date() == today {
        w.today.to_owned()
    } else if today.tomorrow().ok() == Some(from.date()) {
        w.tomorrow.to_owned()
    } else {
        let wd = usize::try_from(from.weekday().to_monday_zero_offset()).unwrap_or(0);
        format!("{} {}", lang.weekday(wd), from.strftime("%-d.%-m."))
    };
    let end = if to.date() == from.date() {
        to.strftime("%H:%M").to_string()
    } else {
        let wd = usize::try_from(to.weekday().to_monday_zero_offset()).unwrap_or(0);
        format!("{} {} {}", lang.weekday(wd), to.strftime("%-d.%-m."), to.strftime("%H:%M"))
    };
    format!("{day} {}–{end}", from.strftime("%H:%M"))
}

fn head(out: &mut String, lang: Lang, title: &str) {
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <meta name=\"robots\" content=\"noindex, nofollow\">\n\
         <title>{}</title>\n<link rel=\"stylesheet\" href=\"/static/page.css\">\n",
        lang.code(),
        esc(title)
    );
}

/// The page of one request.
pub fn render(v: &View<'_>) -> String {
    let w = words(v.lang);
    let mut o = String::with_capacity(8 * 1024);
    head(&mut o, v.lang, &format!("{} – {}", w.title, v.service));
    o.push_str("<script src=\"/static/page.js\" defer></script>\n</head>\n<body>\n<header>\n");
    let _ = write!(o, "<nav aria-label=\"{}\"><ul class=\"langs\">", w.lang_nav);
    for (lang, name) in [(Lang::Fi, "Suomeksi"), (Lang::Sv, "På svenska"), (Lang::En, "In English")]
    {
        let current = if lang == v.lang { " aria-current=\"page\"" } else { "" };
        let _ = write!(
            o,
            "<li><a href=\"/r/{}?lang={code}\" hreflang=\"{code}\" lang=\"{code}\"{current}>{name}</a></li>",
            v.token,
            code = lang.code()
        );
    }
    let _ = writeln!(
        o,
        "</ul></nav>\n<p class=\"service\">{}</p>\n<h1>{}</h1>\n</header>\n<main>",
        esc(v.service),
        w.title
    );
    if let Some(done) = v.done {
        let text = match done {
            Done::Window => w.done_window,
            Done::NextDay => w.done_next_day,
            Done::Cancelled => w.done_cancelled,
            Done::CancelAfterCall => w.done_after_call,
            Done::Refused => w.done_refused,
        };
        let _ = writeln!(o, "<p class=\"done\" role=\"status\">{text}</p>");
    }
    // Status: refreshed in place by the script.
    let (state_class, state_text) = match v.state {
        State::Pending | State::RetryWait => ("waiting", w.waiting),
        State::Dialing if v.cancel_requested => ("cancelled", w.cancel_after_call),
        State::Dialing => ("calling", w.calling),
        State::Connected => ("called", w.called),
        State::Unreachable | State::Expired => ("unreachable", w.unreachable),
        State::Cancelled => ("cancelled", w.cancelled),
    };
    let _ = writeln!(
        o,
        "<section id=\"status\" aria-labelledby=\"h-status\" aria-live=\"polite\">\n\
         <h2 id=\"h-status\">{}</h2>\n<p class=\"state state-{state_class}\">{state_text}</p>\n<dl>",
        w.status
    );
    if v.state.is_waiting() {
        if let Some(place) = v.place {
            let _ = writeln!(o, "<dt>{}</dt><dd class=\"place\">{place}</dd>", w.place);
        }
        let eta = match v.eta {
            Some(e) => esc(&window_words(v.lang, v.tz, v.now, e)),
            None => w.no_estimate.to_owned(),
        };
        let _ = writeln!(o, "<dt>{}</dt><dd class=\"eta\">{eta}</dd>", w.expected);
        let chosen = v.window.as_deref().map_or_else(|| w.any_time.to_owned(), pretty_range);
        let _ = writeln!(o, "<dt>{}</dt><dd class=\"window\">{}</dd>", w.your_window, esc(&chosen));
    }
    if let Some(n) = &v.number {
        let _ = writeln!(o, "<dt>{}</dt><dd class=\"number\">{}</dd>", w.your_number, esc(n));
    }
    let updated = v.now.to_zoned(v.tz.clone()).strftime("%H:%M").to_string();
    let _ = writeln!(o, "</dl>\n<p class=\"updated\">{} {updated}</p>\n</section>", w.updated);
    // The caller ID: patients answer numbers they know.
    if let Some((national, e164)) = &v.caller {
        let live = v.state.is_waiting() || v.state == State::Dialing;
        if live {
            let _ = writeln!(
                o,
                "<section aria-labelledby=\"h-caller\">\n<h2 id=\"h-caller\">{}</h2>\n\
                 <p class=\"caller\"><a href=\"tel:{}\">{}</a></p>\n<p>{}</p>\n\
                 <p><a class=\"button secondary\" href=\"/r/{}/contact.vcf\" download=\"contact.vcf\">{}</a></p>\n\
                 </section>",
                w.caller_h,
                esc(e164),
                esc(national),
                w.caller_hint,
                v.token,
                w.save_contact
            );
        }
    }
    if v.state.is_waiting() && v.offers.len() > 1 {
        let _ = writeln!(
            o,
            "<section aria-labelledby=\"h-window\">\n<h2 id=\"h-window\">{}</h2>\n\
             <form method=\"post\" action=\"/r/{}/window?lang={}\">\n\
             <input type=\"hidden\" name=\"f\" value=\"{}\">\n<fieldset>\n<legend>{}</legend>",
            w.window_h,
            v.token,
            v.lang.code(),
            esc(v.form),
            w.window_legend
        );
        for (i, (range, eta)) in v.offers.iter().enumerate() {
            let value = range.as_deref().unwrap_or("any");
            let label = range.as_deref().map_or_else(|| w.any_time.to_owned(), pretty_range);
            let checked = if range.as_deref() == v.window.as_deref() { " checked" } else { "" };
            let hint = match eta {
                Some(e) => format!("{}: {}", w.around, window_words(v.lang, v.tz, v.now, *e)),
                None => w.no_estimate.to_owned(),
            };
            let _ = writeln!(
                o,
                "<div class=\"choice\"><input type=\"radio\" name=\"window\" id=\"w{i}\" value=\"{}\"{checked} aria-describedby=\"w{i}-eta\">\
                 <label for=\"w{i}\">{}<span class=\"eta-hint\" id=\"w{i}-eta\">{}</span></label></div>",
                esc(value),
                esc(&label),
                esc(&hint)
            );
        }
        let _ = writeln!(
            o,
            "</fieldset>\n<button type=\"submit\">{}</button>\n</form>\n</section>",
            w.window_submit
        );
    }
    if let (true, Some(eta)) = (v.state.is_waiting(), v.next_day) {
        let hint = match eta {
            Some(e) => format!("{}: {}", w.around, window_words(v.lang, v.tz, v.now, e)),
            None => w.no_estimate.to_owned(),
        };
        let _ = writeln!(
            o,
            "<section aria-labelledby=\"h-next-day\">\n<h2 id=\"h-next-day\">{}</h2>\n<p>{}</p>\n\
             <form method=\"post\" action=\"/r/{}/next-day?lang={}\">\n\
             <input type=\"hidden\" name=\"f\" value=\"{}\">\n\
             <button type=\"submit\" aria-describedby=\"next-day-eta\">{}</button>\n\
             <p class=\"eta-hint\" id=\"next-day-eta\">{}</p>\n</form>\n</section>",
            w.next_day_h,
            w.next_day_text,
            v.token,
            v.lang.code(),
            esc(v.form),
            w.next_day_submit,
            esc(&hint)
        );
    }
    if v.state.is_waiting() || (v.state == State::Dialing && !v.cancel_requested) {
        let _ = writeln!(
            o,
            "<section aria-labelledby=\"h-cancel\">\n<h2 id=\"h-cancel\">{}</h2>\n<p>{}</p>\n\
             <form method=\"post\" action=\"/r/{}/cancel?lang={}\">\n\
             <input type=\"hidden\" name=\"f\" value=\"{}\">\n\
             <button type=\"submit\" class=\"danger\">{}</button>\n</form>\n</section>",
            w.cancel_h,
            w.cancel_text,
            v.token,
            v.lang.code(),
            esc(v.form),
            w.cancel_submit
        );
    }
    let _ = writeln!(o, "</main>\n<footer><p>{}</p></footer>\n</body>\n</html>", w.privacy);
    o
}

/// `08:00-10:00` as people write it: `08:00–10:00`.
fn pretty_range(r: &str) -> String {
    r.replacen('-', "–", 1)
}

/// The page for a link that does not (or no longer) work: the same for an unknown, an
/// expired and a tampered token, in all three languages.
pub fn neutral() -> String {
    let mut o = String::with_capacity(1024);
    head(&mut o, Lang::Fi, "Linkki ei ole voimassa – Länken gäller inte – The link is not valid");
    o.push_str(
        "</head>\n<body>\n<main>\n\
         <h1>Linkki ei ole voimassa</h1>\n\
         <p>Jos odotat yhä soittoa, soitamme sinulle. Voit myös ottaa uudelleen yhteyttä terveysasemaan.</p>\n\
         <section lang=\"sv\"><h2>Länken gäller inte</h2>\n\
         <p>Om du fortfarande väntar på samtal ringer vi dig. Du kan också kontakta hälsostationen på nytt.</p></section>\n\
         <section lang=\"en\"><h2>The link is not valid</h2>\n\
         <p>If you are still waiting for a call, we will call you. You can also contact the health station again.</p></section>\n\
         </main>\n</body>\n</html>\n",
    );
    o
}

/// The page for a client that sent too many requests.
pub fn slow_down() -> String {
    let mut o = String::with_capacity(512);
    head(&mut o, Lang::Fi, "Liian monta pyyntöä – För många förfrågningar – Too many requests");
    o.push_str(
        "</head>\n<body>\n<main>\n<h1>Liian monta pyyntöä</h1>\n<p>Yritä hetken kuluttua uudelleen.</p>\n\
         <section lang=\"sv\"><h2>För många förfrågningar</h2><p>Försök igen om en stund.</p></section>\n\
         <section lang=\"en\"><h2>Too many requests</h2><p>Please try again in a minute.</p></section>\n\
         </main>\n</body>\n</html>\n",
    );
    o
}

/// A vCard 3.0 (RFC 2426) of the service's caller ID.
pub fn vcard(service: &str, e164: &str) -> String {
    let name: String = service
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace(';', "\\;");
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{name}\r\nORG:{name}\r\nTEL;TYPE=WORK,VOICE:{e164}\r\nEND:VCARD\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz() -> TimeZone {
        TimeZone::get("Europe/Helsinki").expect("tz")
    }

    fn hel(s: &str) -> Timestamp {
        s.parse::<jiff::civil::DateTime>().expect("dt").to_zoned(tz()).expect("z").timestamp()
    }

    fn view<'a>(tz: &'a TimeZone, state: State) -> View<'a> {
        View {
            lang: Lang::Fi,
            token: "TOKEN",
            form: "FORM",
            service: "Kallion <terveysasema>",
            tz,
            state,
            cancel_requested: false,
            place: Some(3),
            eta: Some(Eta { from: hel("2026-11-30T10:30"), to: hel("2026-11-30T11:00") }),
            number: Some("+35840*****67".into()),
            window: None,
            caller: Some(("09 31045501".into(), "+358931045501".into())),
            offers: vec![
                (None, None),
                (
                    Some("14:00-16:00".into()),
                    Some(Eta { from: hel("2026-11-30T14:00"), to: hel("2026-11-30T14:30") }),
                ),
            ],
            next_day: None,
            done: None,
            now: hel("2026-11-30T09:00"),
        }
    }

    #[test]
    fn a_waiting_request_shows_place_eta_caller_and_both_forms() {
        let tz = tz();
        let html = render(&view(&tz, State::Pending));
        assert!(html.starts_with("<!doctype html>\n<html lang=\"fi\">"));
        assert!(html.contains("Kallion &lt;terveysasema&gt;"), "escaped");
        assert!(html.contains("<dd class=\"place\">3</dd>"));
        assert!(html.contains("<dd class=\"eta\">tänään 10:30–11:00</dd>"));
        assert!(html.contains("href=\"tel:+358931045501\">09 31045501</a>"));
        assert!(html.contains("+35840*****67") && !html.contains("4012345"));
        assert!(html.contains("value=\"14:00-16:00\""));
        assert!(html.contains("arvio: tänään 14:00–14:30"));
        assert!(html.contains("action=\"/r/TOKEN/cancel?lang=fi\""));
        assert_eq!(html.matches("name=\"f\" value=\"FORM\"").count(), 2);
        assert_eq!(html.matches("<h1>").count(), 1);
        assert!(!html.contains("<script>"), "no inline script");
        assert!(!html.contains("style="), "no inline style");
    }

    #[test]
    fn the_next_open_day_is_a_form_only_where_offered() {
        let tz = tz();
        let html = render(&view(&tz, State::Pending));
        assert!(!html.contains("/next-day"), "not offered");
        let eta = Eta { from: hel("2026-12-01T08:00"), to: hel("2026-12-01T08:30") };
        let html = render(&View { next_day: Some(Some(eta)), ..view(&tz, State::Pending) });
        assert!(html.contains("action=\"/r/TOKEN/next-day?lang=fi\""), "{html}");
        assert!(html.contains("id=\"next-day-eta\">arvio: huomenna 08:00–08:30</p>"), "{html}");
        let html = render(&View { next_day: Some(None), ..view(&tz, State::Dialing) });
        assert!(!html.contains("/next-day"), "only while waiting");
        let html = render(&View { done: Some(Done::NextDay), ..view(&tz, State::Pending) });
        assert!(html.contains("Soitamme seuraavana aukiolopäivänä."));
        assert_eq!(Done::parse("next-day"), Some(Done::NextDay));
    }

    #[test]
    fn final_states_offer_no_actions_and_say_what_happened() {
        let tz = tz();
        for (state, text) in [
            (State::Connected, "Sinulle on soitettu"),
            (State::Unreachable, "Emme tavoittaneet sinua"),
            (State::Expired, "Emme tavoittaneet sinua"),
            (State::Cancelled, "Peruttu"),
        ] {
            let html = render(&view(&tz, state));
            assert!(html.contains(text), "{state:?}");
            assert!(!html.contains("<form"), "{state:?}");
            assert!(!html.contains("class=\"place\""), "{state:?}");
        }
        let html = render(&view(&tz, State::Dialing));
        assert!(html.contains("Soitamme sinulle nyt"));
        assert!(html.contains("/cancel"), "a call in progress can still be called off");
        assert!(!html.contains("/window"));
        let html = render(&View { cancel_requested: true, ..view(&tz, State::Dialing) });
        assert!(!html.contains("<form"));
    }

    #[test]
    fn windows_read_as_days_in_each_language() {
        let tz = tz();
        let now = hel("2026-11-30T09:00"); // Monday
        let e = |a: &str, b: &str| Eta { from: hel(a), to: hel(b) };
        let tomorrow = e("2026-12-01T08:00", "2026-12-01T08:30");
        assert_eq!(window_words(Lang::Fi, &tz, now, tomorrow), "huomenna 08:00–08:30");
        assert_eq!(window_words(Lang::Sv, &tz, now, tomorrow), "i morgon 08:00–08:30");
        let wed = e("2026-12-02T08:00", "2026-12-02T08:30");
        assert_eq!(window_words(Lang::En, &tz, now, wed), "Wed 2.12. 08:00–08:30");
        let across = e("2026-11-30T15:50", "2026-12-01T08:10");
        assert_eq!(window_words(Lang::Fi, &tz, now, across), "tänään 15:50–ti 1.12. 08:10");
    }

    #[test]
    fn the_neutral_page_says_nothing_about_any_request() {
        let n = neutral();
        assert!(n.contains("<html lang=\"fi\">") && n.contains("lang=\"sv\""));
        assert!(!n.contains("/r/"));
    }

    #[test]
    fn vcards_escape_the_name() {
        let v = vcard("A, B; C", "+358931045501");
        assert!(v.contains("FN:A\\, B\\; C\r\n"));
        assert!(v.contains("TEL;TYPE=WORK,VOICE:+358931045501\r\n"));
    }
}
