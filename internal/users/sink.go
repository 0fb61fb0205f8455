package users

import "context"

// SinkPosition returns the feed position a relay saved under name, the
// zero EventPos (before every event) when it saved none.
func (s *Service) SinkPosition(ctx context.Context, name string) (EventPos, error) {
	return s.store.SinkPosition(ctx, name)
}

// SetSinkPosition saves the feed position of the relay name.
func (s *Service) SetSinkPosition(ctx context.Context, name string, pos EventPos) error {
	return s.store.SetSinkPosition(ctx, name, pos)
}
