package redact

// Union returns a new Set holding every value of sets (nil sets are
// skipped): the forms each matches, as they are when Union is called.
// Values added to a member later are not in the union; take the union
// when the text to redact is complete. A text redacted with the union is
// marked as one pass would mark it with all the values: where matches of
// values of different members overlap or touch, their union is one Mark.
func Union(sets ...*Set) *Set {
	u := New()
	u.AddSet(sets...)
	return u
}

// AddSet adds every value of the other sets to s, as they are now (see
// Union). Adding a set to itself changes nothing.
func (s *Set) AddSet(others ...*Set) {
	if s == nil {
		return
	}
	var forms []string
	for _, o := range others {
		if o == nil || o == s {
			continue
		}
		o.mu.RLock()
		for f := range o.values {
			forms = append(forms, f)
		}
		o.mu.RUnlock()
	}
	s.addForms(forms)
}
