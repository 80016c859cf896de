package shoal

// EnvDev set to 1 allows development credentials: keys published with the
// code (flix's JWT key pair and its admin API key), with which anyone can
// sign in as anyone. A program given one refuses to start without it, and
// logs a warning when it lets one in. shoal up sets it only where a
// manifest's env says so, as the reference system's does.
const EnvDev = "SHOAL_DEV"

// DevAllowed reports whether getenv (os.Getenv) allows development
// credentials: EnvDev is 1.
func DevAllowed(getenv func(string) string) bool { return getenv(EnvDev) == "1" }
