package submission

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math"

	"github.com/emersion/go-sasl"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/submission/intake"
)

// defaultMaxBytes applies to users without max_message_bytes.
const defaultMaxBytes = 25 << 20

// user is one configured submission account.
type user struct {
	name     string
	hash     []byte
	domains  intake.Domains
	maxBytes int64
	rate     float64
	limiter  *rate.Limiter // nil: unlimited
}

// users holds the accounts by name.
type users struct {
	byName map[string]*user
	// dummy is compared against when the name is unknown, so a wrong name
	// costs as much time as a wrong password and names cannot be probed.
	dummy []byte
}

// newUsers checks the configured accounts and returns them with the
// largest message size any of them may send.
func newUsers(list []config.User) (*users, int64, error) {
	us := &users{byName: make(map[string]*user, len(list))}
	var maxBytes int64
	cost := bcrypt.DefaultCost
	for i, c := range list {
		if c.Name == "" {
			return nil, 0, fmt.Errorf("users[%d]: name is required", i)
		}
		if _, dup := us.byName[c.Name]; dup {
			return nil, 0, fmt.Errorf("users[%d]: name %q used twice", i, c.Name)
		}
		ucost, err := bcrypt.Cost([]byte(c.PasswordHash))
		if err != nil {
			return nil, 0, fmt.Errorf("users[%d] (%s): password_hash is not a bcrypt hash: %w", i, c.Name, err)
		}
		if len(c.Domains) == 0 {
			return nil, 0, fmt.Errorf("users[%d] (%s): domains is required (the sender domains the user may use)", i, c.Name)
		}
		if c.MaxMessageBytes < 0 || c.Rate < 0 {
			return nil, 0, fmt.Errorf("users[%d] (%s): max_message_bytes and rate must not be negative", i, c.Name)
		}
		u := &user{name: c.Name, hash: []byte(c.PasswordHash), domains: intake.NewDomains(c.Domains),
			maxBytes: c.MaxMessageBytes, rate: c.Rate}
		if u.maxBytes == 0 {
			u.maxBytes = defaultMaxBytes
		}
		if c.Rate > 0 {
			// A burst of one second's worth lets an application send a
			// small batch at once and still holds it to the rate.
			u.limiter = rate.NewLimiter(rate.Limit(c.Rate), int(math.Max(1, math.Ceil(c.Rate))))
		}
		us.byName[c.Name] = u
		maxBytes = max(maxBytes, u.maxBytes)
		cost = ucost
	}
	if len(us.byName) == 0 {
		return nil, 0, errors.New("no users configured: submission accepts only authenticated mail")
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
	if err != nil {
		return nil, 0, fmt.Errorf("dummy hash: %w", err)
	}
	us.dummy = dummy
	return us, maxBytes, nil
}

// check returns the user whose name and password these are, or nil.
func (us *users) check(name, password string) *user {
	u, ok := us.byName[name]
	if !ok {
		_ = bcrypt.CompareHashAndPassword(us.dummy, []byte(password))
		return nil
	}
	if bcrypt.CompareHashAndPassword(u.hash, []byte(password)) != nil {
		return nil
	}
	return u
}

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login), which go-sasl lacks and many
// applications' mail libraries still use: "Username:" and "Password:"
// challenges, the username possibly sent as an initial response.
type loginServer struct {
	step     int
	username string
	auth     func(username, password string) error
}

func (s *loginServer) Next(resp []byte) (challenge []byte, done bool, err error) {
	switch s.step {
	case 0:
		s.step = 1
		if resp == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		s.username, s.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 2:
		s.step = 3
		return nil, true, s.auth(s.username, string(resp))
	}
	return nil, true, sasl.ErrUnexpectedClientResponse
}
