package tools

// set_guest_notes_tags: a guest's notes (PVE's description) and tags, nothing
// else. The jarvis-created tag is never added or removed by hand.

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
)

type NotesTagsInput struct {
	VMID  int      `json:"vmid" jsonschema:"the guest's numeric id; Jarvis finds its node"`
	Notes *string  `json:"notes,omitempty" jsonschema:"the guest's notes (Proxmox's description, up to 8 KiB); \"\" clears them; left out, they stay"`
	Tags  []string `json:"tags,omitempty" jsonschema:"the guest's tags, replacing the ones it has; [] removes them all; left out, they stay. Lower case: letters, digits, '_', '+', '.', '-'. jarvis-created stays on a guest Jarvis created and cannot be set by hand"`
}

type NotesTagsResult struct {
	VMID         int64    `json:"vmid"`
	Node         string   `json:"node"`
	Kind         string   `json:"kind"`
	TagsBefore   []string `json:"tags_before"`
	TagsAfter    []string `json:"tags_after"`
	NotesChanged bool     `json:"notes_changed"`
}

const (
	maxNotesBytes = 8192
	maxTags       = 32
	maxTagLen     = 64
)

func setGuestNotesTags() *Tool {
	return define[NotesTagsInput, NotesTagsResult](spec{
		name: "set_guest_notes_tags", title: "Set notes and tags", tier: safety.Yellow,
		description: "Set a VM's or container's notes (Proxmox's description) and/or replace its tags, by VMID. Changes nothing else. The jarvis-created tag is kept on guests that have it and cannot be added by hand.",
		adjust: func(s *jsonschema.Schema) {
			vmidSchema(property(s, "vmid"))
			property(s, "notes").MaxLength = ptr(maxNotesBytes)
			t := property(s, "tags")
			t.MaxItems = ptr(maxTags)
			t.Items = &jsonschema.Schema{Type: "string", Pattern: guestTagRE.String(), MaxLength: ptr(maxTagLen)}
		},
	}, prepareNotesTags)
}

func prepareNotesTags(ctx context.Context, env *Env, in NotesTagsInput) (*Call, error) {
	if in.Notes == nil && in.Tags == nil {
		return nil, inputErrorf("give notes, tags or both; nothing would change")
	}
	if in.Notes != nil {
		if len(*in.Notes) > maxNotesBytes || !utf8.ValidString(*in.Notes) || strings.ContainsRune(*in.Notes, 0) {
			return nil, inputErrorf("notes: valid UTF-8 text of up to %d bytes", maxNotesBytes)
		}
	}
	var wanted []string
	if in.Tags != nil {
		if len(in.Tags) > maxTags {
			return nil, inputErrorf("at most %d tags", maxTags)
		}
		for _, t := range in.Tags {
			if !guestTagRE.MatchString(t) || len(t) > maxTagLen {
				return nil, inputErrorf("tag %q: lower-case letters, digits, '_', '+', '.' and '-', starting with a letter, digit or '_' (up to %d)", t, maxTagLen)
			}
			if !slices.Contains(wanted, t) {
				wanted = append(wanted, t)
			}
		}
	}
	r, err := resolveGuest(ctx, env, in.VMID)
	if err != nil {
		return nil, err
	}
	noun := guestNoun(r)
	if r.Lock != "" {
		return nil, inputErrorf("%s is locked (%s) by a task under way; Proxmox refuses config changes until it has finished (get_recent_tasks for node %s)", noun, r.Lock, r.Node)
	}
	cfg, err := env.PVE.GuestConfig(ctx, r.Node, r.Type, in.VMID)
	if err != nil {
		return nil, nodeError(ctx, env, r.Node, err)
	}
	before := guestTags(confText(cfg, "tags"))
	slices.Sort(before)
	// Jarvis's marks (jarvis-created and the jarvis-id-… tag) stay as they
	// are: never added by hand, never removed.
	marks := slices.DeleteFunc(slices.Clone(before), func(t string) bool { return !isJarvisMark(t) })
	marked := len(marks) > 0
	set, del := url.Values{}, []string{}
	var parts []string
	after := before
	if in.Tags != nil {
		for _, t := range wanted {
			if isJarvisMark(t) && !slices.ContainsFunc(marks, func(m string) bool { return strings.EqualFold(m, t) }) {
				return nil, inputErrorf("%s is one of the tags that mark guests Jarvis created; it cannot be set by hand (%s does not have it)", t, noun)
			}
		}
		wanted = slices.DeleteFunc(wanted, isJarvisMark)
		wanted = append(wanted, marks...)
		after = slices.Clone(wanted)
		slices.Sort(after)
		if !slices.Equal(after, before) {
			if len(after) == 0 {
				del = append(del, "tags")
			} else {
				set.Set("tags", tagList(after))
			}
			s := fmt.Sprintf("tags %s → %s", tagsWords(before), tagsWords(after))
			if marked {
				s += " (Jarvis's " + strings.Join(marks, ", ") + " kept)"
			}
			parts = append(parts, s)
		}
	}
	oldNotes := confText(cfg, "description")
	notesChanged := false
	if in.Notes != nil && *in.Notes != oldNotes {
		notesChanged = true
		switch {
		case *in.Notes == "":
			del = append(del, "description")
			parts = append(parts, fmt.Sprintf("notes cleared (were %d characters)", utf8.RuneCountInString(oldNotes)))
		case oldNotes == "":
			set.Set("description", *in.Notes)
			parts = append(parts, fmt.Sprintf("notes set (%d characters: %q)", utf8.RuneCountInString(*in.Notes), shorten(*in.Notes, 60)))
		default:
			set.Set("description", *in.Notes)
			parts = append(parts, fmt.Sprintf("notes replaced (%d → %d characters: %q)", utf8.RuneCountInString(oldNotes), utf8.RuneCountInString(*in.Notes), shorten(*in.Notes, 60)))
		}
	}
	if len(parts) == 0 {
		return nil, inputErrorf("%s already has these notes and tags; nothing would change", noun)
	}
	if in.Tags == nil || slices.Equal(after, before) {
		parts = append(parts, "tags unchanged")
	}
	if !notesChanged {
		parts = append(parts, "notes unchanged")
	}
	effect := fmt.Sprintf("Set %s on node %s: %s; nothing else changes", noun, r.Node, strings.Join(parts, "; "))
	digest := confText(cfg, "digest")
	return &Call{Target: guestTarget(r), Effect: effect, Run: func(ctx context.Context, _ Progress) (any, error) {
		w := guestWrite{what: "change of the notes and tags of " + noun, node: r.Node, vmid: in.VMID}
		if err := env.PVE.SetGuestMeta(ctx, r.Node, r.Type, in.VMID, set, del, digest); err != nil {
			return nil, withCheck(w.sendError(err), fmt.Sprintf("Before retrying, check get_guest_config for VMID %d to see whether its notes and tags changed", in.VMID))
		}
		return NotesTagsResult{VMID: int64(in.VMID), Node: r.Node, Kind: r.Type, TagsBefore: tagsOrEmpty(before), TagsAfter: tagsOrEmpty(after), NotesChanged: notesChanged}, nil
	}}, nil
}

func tagsOrEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
