package clickhouse

import (
	"context"
	"fmt"
	"strconv"

	"github.com/go-faster/city"
)

// The Go side of response_key. Rows that go straight into the warehouse
// (direct.go) get their key here instead of from SQL, and must get exactly
// the key that ResponseKeySQL gives on the server: the anti-join compares
// both kinds. This mirrors ClickHouse's cityHash64 over several arguments:
// a String is CityHash64 v1.0.2 of its bytes, an integer or DateTime is
// ClickHouse's intHash64 of its value (salted, see intHash64), and each argument after the first is folded in
// with Hash128to64(accumulated, next). Store.checkKeys compares it with the
// connected server at Open; on any difference the product stages every row.

// intHash64 is ClickHouse's IntHash64Impl: the MurmurHash3 finaliser over
// the value xor a fixed salt.
func intHash64(x uint64) uint64 {
	x ^= 0x4CF2D2BAAE6DA887
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

func hash128to64(lo, hi uint64) uint64 {
	const mul = 0x9ddfea08eb382d69
	a := (lo ^ hi) * mul
	a ^= a >> 47
	b := (hi ^ a) * mul
	b ^= b >> 47
	return b * mul
}

// keyHasher computes response keys with one reusable scratch buffer, so
// that hashing a row allocates nothing. It is not safe for concurrent use.
type keyHasher struct {
	buf     []byte
	account uint64 // cityHash64 of the account, the key's first argument
}

func newKeyHasher(account string) *keyHasher {
	h := &keyHasher{buf: make([]byte, 0, 256)}
	h.account = h.str(account)
	return h
}

func (h *keyHasher) str(s string) uint64 {
	h.buf = append(h.buf[:0], s...)
	return city.CH64(h.buf)
}

// campaign is the key's campaign argument: 'i:' and the decimal id when the
// row has one, else 't:' and the title (see ResponseKeySQL).
func (h *keyHasher) campaign(hasID bool, id uint64, title string) uint64 {
	if hasID {
		h.buf = strconv.AppendUint(append(h.buf[:0], "i:"...), id, 10)
	} else {
		h.buf = append(append(h.buf[:0], "t:"...), title...)
	}
	return city.CH64(h.buf)
}

// key is cityHash64(account, user_id, source_raw, event_time, campaign, url, link_title).
func (h *keyHasher) key(userID uint64, sourceRaw string, eventTime uint32, hasCampaignID bool, campaignID uint64, campaignTitle, url, linkTitle string) uint64 {
	k := hash128to64(h.account, intHash64(userID))
	k = hash128to64(k, h.str(sourceRaw))
	k = hash128to64(k, intHash64(uint64(eventTime)))
	k = hash128to64(k, h.campaign(hasCampaignID, campaignID, campaignTitle))
	k = hash128to64(k, h.str(url))
	return hash128to64(k, h.str(linkTitle))
}

// keyCheckSQL has the server compute, for 300 made-up rows, the key exactly
// as the stage does (cityHash64 over columns of the same types), with
// strings of every length class CityHash treats differently.
const keyCheckSQL = `SELECT number,
 cityHash64(concat('acct', toString(number % 3)), toUInt64(number * 7919 + 1), substring(?, 1, number % 13),
   toDateTime(toUInt32(1500000000 + number * 3601), 'UTC'),
   if(number % 2 = 0, concat('i:', toString(number * 31)), concat('t:', substring(?, 1, number % 97))),
   substring(?, 1, number % 151), substring(?, 1, number % 71))
FROM system.numbers LIMIT 300`

// keyCheckText feeds the substrings of keyCheckSQL: mixed ASCII and UTF-8,
// longer than every length class.
var keyCheckText = func() string {
	s := ""
	for len(s) < 200 {
		s += "Grüße über http://example.com/a?b=c&d=é; "
	}
	return s
}()

// checkKeys reports whether the server's cityHash64 gives the keys the Go
// side computes. Should a server version ever hash differently, the
// product then stages every row (slower, still exactly once) instead of
// storing keys the anti-join would not recognise.
func (s *Store) checkKeys(ctx context.Context) (bool, error) {
	rows, err := s.conn.Query(ctx, keyCheckSQL, keyCheckText, keyCheckText, keyCheckText, keyCheckText)
	if err != nil {
		return false, s.scrub(fmt.Errorf("compare response keys with the server: %w", err))
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var i, want uint64
		if err := rows.Scan(&i, &want); err != nil {
			return false, s.scrub(fmt.Errorf("compare response keys with the server: %w", err))
		}
		if goKeyCheck(i) != want {
			return false, rows.Err()
		}
		n++
	}
	return n == 300, rows.Err()
}

// goKeyCheck is row i of keyCheckSQL, computed in Go.
func goKeyCheck(i uint64) uint64 {
	prefix := func(n uint64) string {
		// substring counts bytes in ClickHouse, as slicing does in Go.
		return keyCheckText[:n]
	}
	h := newKeyHasher("acct" + strconv.FormatUint(i%3, 10))
	return h.key(i*7919+1, prefix(i%13), uint32(1500000000+i*3601), i%2 == 0, i*31, prefix(i%97), prefix(i%151), prefix(i%71))
}
