package rules

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func TestMaxUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name               string
		unavailable, surge string
		targeted, want     int
		wantErr            string
	}{
		{name: "rounds a percentage up, as the controller does", unavailable: "10%", surge: "0", targeted: 15, want: 2},
		{name: "takes one pod at a time when neither is set above zero", unavailable: "0", surge: "0", targeted: 5, want: 1},
		{name: "takes none down when surging", unavailable: "0", surge: "1", targeted: 5, want: 0},
		{name: "refuses a negative count, as the API server does", unavailable: "-1", surge: "0", targeted: 100, wantErr: "resolving maxUnavailable: -1 must not be negative"},
		{name: "refuses a negative percentage", unavailable: "1", surge: "-5%", targeted: 100, wantErr: "resolving maxSurge: -5% must not be negative"},
		{name: "refuses a percentage that is not a number", unavailable: "x%", surge: "0", targeted: 10, wantErr: "resolving maxUnavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ru := &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptr.To(intstr.Parse(tc.unavailable)), MaxSurge: ptr.To(intstr.Parse(tc.surge))}
			got, err := MaxUnavailable(ru, tc.targeted)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("MaxUnavailable = %d, %v; want an error containing %q", got, err, tc.wantErr)
				}
			case err != nil || got != tc.want:
				t.Fatalf("MaxUnavailable = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}
