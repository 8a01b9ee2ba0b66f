package fetch

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ValidateFileName accepts a bare file name as the API reports it. The name
// comes from a remote reply and goes into FTP commands and local paths, so
// anything that could change directory or inject a command is refused.
func ValidateFileName(name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("export file name %q: %w", name, err)
	}
	return nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case len(name) > 255:
		return errors.New("longer than 255 bytes")
	case !utf8.ValidString(name):
		return errors.New("not valid UTF-8")
	case strings.ContainsAny(name, `/\`):
		return errors.New("holds a path separator: only a base name is accepted")
	case strings.Contains(name, ".."):
		return errors.New(`holds ".."`)
	case name == ".":
		return errors.New(`is "."`)
	case len(name) >= 2 && name[1] == ':' && isASCIILetter(name[0]):
		return errors.New("looks like an absolute Windows path")
	case strings.TrimSpace(name) != name:
		return errors.New("starts or ends with white space")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("holds control character %U", r)
		}
	}
	return nil
}

func isASCIILetter(b byte) bool { return (b|0x20) >= 'a' && (b|0x20) <= 'z' }

// checkDir accepts a folder path for FTP commands: relative or absolute,
// but without control characters or ".." components.
func checkDir(dir string) error {
	if !utf8.ValidString(dir) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range dir {
		if unicode.IsControl(r) {
			return fmt.Errorf("holds control character %U", r)
		}
	}
	for _, part := range strings.Split(dir, "/") {
		if part == ".." {
			return errors.New(`holds a ".." component`)
		}
	}
	return nil
}
