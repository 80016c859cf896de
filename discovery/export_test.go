package discovery

// MsgJoinRetry lets the external tests wait for a failed join attempt.
const MsgJoinRetry = msgJoinRetry
