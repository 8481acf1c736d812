// The supervisor page: shows GET /v1/live as it is, every few seconds. No computation of
// its own beyond formatting; no outside resource; text only through textContent.
'use strict';

const POLL_MS = 5000;

const TEXT = {
  fi: {
    title: 'Takaisinsoitot nyt', token: 'API-avain', login: 'Kirjaudu', logout: 'Kirjaudu ulos',
    loginFailed: 'Väärä avain.', open: 'Auki', closed: 'Suljettu', opens: 'aukeaa',
    waiting: 'odottaa', due_now: 'soitettavissa nyt', in_call: 'puhelussa',
    oldest: 'vanhin odottanut', at_risk: 'vaarassa myöhästyä', missed_today: 'myöhästyneet tänään',
    same_day: 'samana päivänä tänään', eta_new: 'uusi pyyntö soitetaan', last_hour: 'viime tunti',
    none: 'ei soittoja', updated: 'päivitetty', stale: 'ei yhteyttä palvelimeen', noEta: 'ei arviota',
    outcome: { connected: 'yhdistetty', busy: 'varattu', no_answer: 'ei vastausta', rejected: 'hylätty',
      not_confirmed: 'ei vahvistettu', invalid_number: 'virheellinen numero', network_failure: 'verkkovika',
      interrupted: 'keskeytyi', declined: 'ei tarvetta', handover_failed: 'siirto epäonnistui' },
  },
  sv: {
    title: 'Återuppringningar nu', token: 'API-nyckel', login: 'Logga in', logout: 'Logga ut',
    loginFailed: 'Fel nyckel.', open: 'Öppet', closed: 'Stängt', opens: 'öppnar',
    waiting: 'väntar', due_now: 'kan ringas nu', in_call: 'i samtal',
    oldest: 'längst väntat', at_risk: 'riskerar att bli sena', missed_today: 'sena i dag',
    same_day: 'samma dag i dag', eta_new: 'en ny begäran rings', last_hour: 'senaste timmen',
    none: 'inga samtal', updated: 'uppdaterad', stale: 'ingen kontakt med servern', noEta: 'ingen uppskattning',
    outcome: { connected: 'kopplad', busy: 'upptaget', no_answer: 'inget svar', rejected: 'avvisat',
      not_confirmed: 'ej bekräftat', invalid_number: 'ogiltigt nummer', network_failure: 'nätverksfel',
      interrupted: 'avbrutet', declined: 'behövs inte', handover_failed: 'kopplingen misslyckades' },
  },
  en: {
    title: 'Callbacks now', token: 'API token', login: 'Log in', logout: 'Log out',
    loginFailed: 'Wrong token.', open: 'Open', closed: 'Closed', opens: 'opens',
    waiting: 'waiting', due_now: 'due now', in_call: 'in a call',
    oldest: 'oldest waiting', at_risk: 'at risk of missing today', missed_today: 'missed today',
    same_day: 'same day today', eta_new: 'a new request is called', last_hour: 'last hour',
    none: 'no calls', updated: 'updated', stale: 'no contact with the server', noEta: 'no estimate',
    outcome: { connected: 'connected', busy: 'busy', no_answer: 'no answer', rejected: 'rejected',
      not_confirmed: 'not confirmed', invalid_number: 'invalid number', network_failure: 'network failure',
      interrupted: 'interrupted', declined: 'declined', handover_failed: 'hand-over failed' },
  },
};

function pickLang() {
  const asked = new URLSearchParams(location.search).get('lang') || localStorage.getItem('callbackd-lang');
  if (asked && TEXT[asked]) return asked;
  for (const l of navigator.languages || [navigator.language || 'fi']) {
    const code = l.slice(0, 2).toLowerCase();
    if (TEXT[code]) return code;
  }
  return 'fi';
}

let lang = pickLang();
let last = null;

function t(key) { return TEXT[lang][key]; }

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function hhmm(iso) { return iso ? iso.slice(11, 16) : ''; }

function when(iso) {
  // The service's own local time, as the API gives it: "2026-11-30T08:00:00+02:00".
  if (!iso) return '';
  const d = iso.slice(8, 10) + '.' + iso.slice(5, 7) + '.';
  return d + ' ' + hhmm(iso);
}

function age(s) {
  if (s === null || s === undefined) return '–';
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h > 0 ? h + ' h ' + m + ' min' : m + ' min';
}

function figure(dl, name, label, value, cls) {
  const div = el('div', cls === 'wide' ? { class: 'wide' } : {});
  const dd = el('dd', { 'data-figure': name }, String(value));
  if (cls && cls !== 'wide') dd.className = cls;
  div.append(dd, el('dt', {}, label));
  dl.append(div);
}

function card(s) {
  const sec = el('section', { 'data-service': s.id });
  sec.append(el('h2', {}, s.name));
  const state = s.open_now ? t('open') : t('closed') + (s.next_opening ? ', ' + t('opens') + ' ' + when(s.next_opening) : '');
  sec.append(el('p', { class: 'state' + (s.open_now ? ' open' : ''), 'data-figure': 'open_now' }, state));
  const dl = el('dl');
  figure(dl, 'waiting', t('waiting'), s.waiting);
  figure(dl, 'due_now', t('due_now'), s.due_now);
  figure(dl, 'in_call', t('in_call'), s.in_call);
  figure(dl, 'oldest_waiting', t('oldest'), age(s.oldest_waiting_s));
  figure(dl, 'at_risk', t('at_risk'), s.at_risk, s.at_risk > 0 ? 'warn' : '');
  figure(dl, 'missed_today', t('missed_today'), s.missed_today, s.missed_today > 0 ? 'bad' : '');
  const rate = s.same_day_today.rate;
  figure(dl, 'same_day_today', t('same_day'),
    rate === null ? '–' : (rate * 100).toFixed(0) + ' % (' + s.same_day_today.hits + '/' + s.same_day_today.of + ')',
    rate !== null && rate < 1 ? 'warn' : '');
  figure(dl, 'eta_new', t('eta_new'),
    s.eta_new ? when(s.eta_new.from) + '–' + hhmm(s.eta_new.to) : t('noEta'), 'wide');
  sec.append(dl);
  const ul = el('ul', { class: 'outcomes', 'data-figure': 'last_hour', 'aria-label': t('last_hour') });
  const entries = Object.entries(s.last_hour);
  ul.append(el('li', {}, t('last_hour') + ':'));
  if (entries.length === 0) ul.append(el('li', {}, t('none')));
  for (const [o, n] of entries) ul.append(el('li', { 'data-outcome': o }, (TEXT[lang].outcome[o] || o) + ' ' + n));
  sec.append(ul);
  return sec;
}

function render() {
  document.documentElement.lang = lang;
  for (const e of document.querySelectorAll('[data-t]')) e.textContent = t(e.dataset.t);
  for (const b of document.querySelectorAll('[data-lang]')) b.setAttribute('aria-pressed', String(b.dataset.lang === lang));
  document.title = 'callbackd – ' + t('title');
  if (!last) return;
  const main = document.getElementById('services');
  main.replaceChildren(...last.services.map(card));
  const at = new Date(last.generated_at);
  document.getElementById('updated').textContent = t('updated') + ' ' + at.toLocaleTimeString(lang);
}

async function poll() {
  const error = document.getElementById('error');
  try {
    const r = await fetch('/v1/live', { credentials: 'same-origin', cache: 'no-store' });
    if (r.status === 401) {
      document.getElementById('login').hidden = false;
      document.getElementById('logout').hidden = true;
      document.getElementById('login-failed').hidden = location.hash !== '#login-failed';
      error.hidden = true;
      return;
    }
    if (!r.ok) throw new Error('HTTP ' + r.status);
    last = await r.json();
    document.getElementById('login').hidden = true;
    document.getElementById('logout').hidden = false;
    error.hidden = true;
    render();
  } catch (e) {
    error.textContent = t('stale') + ' (' + e.message + ')';
    error.hidden = false;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  for (const b of document.querySelectorAll('[data-lang]')) {
    b.addEventListener('click', () => {
      lang = b.dataset.lang;
      localStorage.setItem('callbackd-lang', lang);
      render();
    });
  }
  render();
  poll();
});
