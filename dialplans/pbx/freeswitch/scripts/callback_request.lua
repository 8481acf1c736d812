-- conf/../scripts/callback_request.lua: "press 1 for a callback".
-- Reads the caller's number (or asks for it), confirms it, and POSTs it to callbackd.
-- Needs curl on the FreeSWITCH host. Channel variable cb_service = callbackd dialplan id.

local CALLBACKD_URL = "http://192.0.2.10:8080/v1/callbacks"   -- EDIT: callbackd [http] bind
local PROMPTS = "callbackd/"                                    -- EDIT: your prompt directory

local service = session:getVariable("cb_service") or ""
if not service:match("^[a-z0-9_-]+$") then
  freeswitch.consoleLog("ERR", "callback_request: bad cb_service\n")
  return
end

-- Only digits and + ever reach the shell.
local function digits(s) return ((s or ""):gsub("[^0-9+]", "")) end

local number = digits(session:getVariable("caller_id_number"))
if number:match("^358") then number = "+" .. number end
local hidden = session:getVariable("privacy_hide_number") == "true"
if hidden or #number < 6 then
  number = digits(session:playAndGetDigits(6, 15, 2, 10000, "#",
    PROMPTS .. "callback-enter-number.wav", PROMPTS .. "callback-failed.wav", "^[0-9]+$"))
end
if #number < 6 then return end

session:streamFile(PROMPTS .. "callback-we-will-call.wav")
local lang = session:getVariable("default_language") or "en"
session:say((number:gsub("%+", "")), lang, "number", "iterated")
local ok = session:playAndGetDigits(1, 1, 2, 5000, "", PROMPTS .. "callback-press-1-to-confirm.wav",
  "", "^[12]$")
if ok ~= "1" then return end

local body = string.format('{"service":"%s","number":"%s","channel":"ivr"}', service, number)
local cmd = string.format(
  "curl -s -o /dev/null -w '%%{http_code}' --max-time 5 -H 'Content-Type: application/json' -d '%s' %s",
  body, CALLBACKD_URL)
local pipe = io.popen(cmd)
local code = pipe and pipe:read("*a") or ""
if pipe then pipe:close() end

-- 201 accepted, 200 a duplicate of a live request: either way the patient is in the queue.
if code == "201" or code == "200" then
  session:streamFile(PROMPTS .. "callback-registered.wav")
else
  freeswitch.consoleLog("WARNING", "callback_request: callbackd answered " .. code .. "\n")
  session:streamFile(PROMPTS .. "callback-failed.wav")
end
