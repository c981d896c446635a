package streams

import (
	"time"

	"github.com/sluice-mta/sluice/pkg/events"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/text"
)

// luaEvent is prepended to every script that changes a recipient's state:
// event(key, payload) appends one event (pkg/events) to the events stream
// in the script's success path, so the event and the change it reports
// are one atomic step. An empty payload appends nothing. To hook a script:
// prepend luaEvent, pass EventsKey() as a key and the payload as an
// argument, and call event(KEYS[k], ARGV[a]) where the change is made.
const luaEvent = `
local function event(key, payload)
  if payload ~= '' then redis.call('XADD', key, '*', '` + events.Field + `', payload) end
end
`

// luaEvents is luaEvent's batch form: events(key, payloads) appends the
// payloads (a Lua list of encoded events) to the events stream as one
// entry: one event in field events.Field, several as a JSON array in
// events.BatchField. An empty list appends nothing. It takes the list
// over: the brackets go on its first and last items, so the entry is one
// string made once (joining the list and then bracketing the result made
// every event's bytes twice: 8% of one Redis's instructions a message).
const luaEvents = luaEvent + `
local function events(key, list)
  if #list == 1 then
    event(key, list[1])
  elseif #list > 1 then
    list[1], list[#list] = '[' .. list[1], list[#list] .. ']'
    redis.call('XADD', key, '*', '` + events.BatchField + `', table.concat(list, ','))
  end
end
`

// EventsKey is shard's events stream, the one the scripts moving that
// shard's jobs append to.
func (q *Queue) EventsKey(shard int) string { return events.ShardKey(q.ks, shard) }

// settleEvent is the event of a settle: the record's status, or expired.
func settleEvent(d Delivery, rec Record) string {
	t := events.Type(rec.Status)
	if rec.Status == string(outcome.Bounced) && rec.Reason == "expired" {
		t = events.Expired
	}
	at := time.Now()
	if rec.At > 0 {
		at = time.UnixMilli(rec.At)
	}
	return events.Event{
		Type: t, Time: at, Campaign: d.Campaign, Job: d.ID, Recipient: d.To,
		Code: rec.Code, Enhanced: rec.Enhanced, Reply: text.Clip(rec.Reply, events.ReplyLimit),
		MX: rec.Host, Attempt: rec.Attempts, Reason: rec.Reason,
	}.Encode()
}

// jobEvent is the event at time at of a job without an attempt (queued,
// suppressed at launch).
func jobEvent(t events.Type, j *Job, rec Record, at time.Time) string {
	return events.Event{
		Type: t, Time: at, Campaign: j.Campaign, Job: j.ID, Recipient: j.To,
		Reason: rec.Reason, Code: rec.Code, Enhanced: rec.Enhanced, Reply: text.Clip(rec.Reply, events.ReplyLimit),
	}.Encode()
}

// luaJobEvent defines job_event(key, type, time, job, reason): the event
// of a decoded job in a script that has only the job (cancelled while
// parked). It needs luaEvent before it.
const luaJobEvent = `
local function job_event(key, typ, at, j, reason)
  event(key, cjson.encode({type = typ, time = at, campaign = j['c'], job = j['id'], recipient = j['to'], reason = reason}))
end
`

// eventTime is the time argument of job_event.
func eventTime() string { return time.Now().UTC().Format(time.RFC3339Nano) }

func amendEvent(a *Amendment) string {
	if a.Event == nil {
		return ""
	}
	return a.Event.Encode()
}
