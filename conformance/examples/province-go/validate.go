package main

import (
	"errors"
	"fmt"
	"regexp"

	commonv1 "evcgen/evc/common/v1"
	directivev1 "evcgen/evc/directive/v1"
)

// The contract's rules (protovalidate annotations in proto/) that this province checks itself.
var (
	uuidPattern        = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	provinceCode       = regexp.MustCompile(`^[1-8][0-9]0000$`)
	certificateNumber  = regexp.MustCompile(`^[1-8][0-9]0000-[A-Za-z0-9-]{4,40}$`)
	idNumberCharacters = regexp.MustCompile(`^[0-9A-Z-]{5,32}$`)
	residentID         = regexp.MustCompile(`^[0-9]{17}[0-9X]$`)
)

// checkDirective is the envelope of a directive: a copy that breaks it is poison. An action
// this province does not know is not poison: it is answered UNKNOWN_ACTION.
func checkDirective(d *directivev1.Directive) error {
	switch {
	case !uuidPattern.MatchString(d.DirectiveId):
		return fmt.Errorf("directive_id %q is not a UUID", d.DirectiveId)
	case !provinceCode.MatchString(d.TargetProvinceCode):
		return fmt.Errorf("target_province_code %q is not a province code", d.TargetProvinceCode)
	case d.RecordId == "" || len(d.RecordId) > 64:
		return errors.New("record_id must be 1 to 64 characters")
	case d.RecordSequence < 1 || d.Attempt < 1 || d.StreamVersion < 1:
		return errors.New("record_sequence, attempt and stream_version must be at least 1")
	case d.IssuedAt == nil:
		return errors.New("issued_at is required")
	case d.Action == nil && len(d.XXX_unrecognized) == 0:
		return errors.New("no action")
	}
	return nil
}

// checkIdentity returns what is wrong with an identity, naming the field, or nil.
func checkIdentity(id *commonv1.Identity) error {
	switch {
	case id == nil:
		return errors.New("identity is required")
	case commonv1.IdType_name[int32(id.IdType)] == "" || id.IdType == commonv1.IdType_ID_TYPE_UNSPECIFIED:
		return errors.New("identity.id_type must be a defined document type")
	case !idNumberCharacters.MatchString(id.IdNumber):
		return errors.New("identity.id_number must be 5 to 32 of 0-9, A-Z and -")
	case id.IdType == commonv1.IdType_ID_TYPE_RESIDENT_ID && !validResidentID(id.IdNumber):
		return errors.New("identity.id_number must be 17 digits followed by a valid ISO 7064 MOD 11-2 check character")
	case id.Name == "" || len([]rune(id.Name)) > 64:
		return errors.New("identity.name must be 1 to 64 characters")
	case id.BirthDate == nil:
		return errors.New("identity.birth_date is required")
	case commonv1.Sex_name[int32(id.Sex)] == "" || id.Sex == commonv1.Sex_SEX_UNSPECIFIED:
		return errors.New("identity.sex must be male or female")
	}
	return nil
}

// validResidentID checks the check character of a resident identity number (GB 11643).
func validResidentID(n string) bool {
	if !residentID.MatchString(n) {
		return false
	}
	weights := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i, w := range weights {
		sum += int(n[i]-'0') * w
	}
	return "10X98765432"[sum%11] == n[17]
}
